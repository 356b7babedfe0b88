/**
 * The one-statement namespace operations (sql/0003 via src/meta/fs-ops.ts)
 * against the step-by-step TypeScript versions they replace
 * (fs-ops-reference.ts): the same scenario on three fresh databases — the
 * reference in store.txn, the new functions in store.txn, the *Fast variants
 * outside any transaction — must leave the same rows in files, folders,
 * replicas, node_work and replication_queue, announce the same changes, and
 * fail with the same errors.
 */
import t, { type Test } from 'tap';
import { testStore } from '../helpers/db.js';
import type { MetaStore, Queryable } from '../../src/meta/store.js';
import { commitFileVersion, META_CHANNEL } from '../../src/meta/files.js';
import * as now from '../../src/meta/fs-ops.js';
import * as ref from './fs-ops-reference.js';
import { ensureNodes } from '../../src/meta/nodes.js';

type Ops = {
  makeFolder: typeof now.makeFolder;
  removeFolder: typeof now.removeFolder;
  unlinkFile: typeof now.unlinkFile;
  renamePath: typeof now.renamePath;
  setAttributes: typeof now.setAttributes;
};
/** how an operation is run: in a transaction, or alone (the fast path) */
type Runner = <T>(store: MetaStore, op: (db: Queryable) => Promise<T>) => Promise<T>;
const inTxn: Runner = (store, op) => store.txn(op);

const cls = { class: 'default', replicaTarget: 2, backupTarget: 1 };

/** A comparable picture of the whole namespace (no ids, seqs or clock values). */
async function snapshot(db: Queryable): Promise<Record<string, unknown>> {
  const q = (sql: string) => db.query(sql);
  return {
    folders: await q(`SELECT f.path, p.path AS parent, f.mode, f.uid, f.gid FROM folders f LEFT JOIN folders p ON p.id = f.parent_id ORDER BY f.path`),
    files: await q(`SELECT f.path, d.path AS folder, f.kind, f.size, f.mode, f.uid, f.gid, f.checksum, f.version, f.deleted_at IS NOT NULL AS deleted,
                           t.path AS renamed_to, t.deleted_at IS NOT NULL AS target_deleted, f.mtime_us = 4242 AS mtime_set, f.atime_us = 4343 AS atime_set
                      FROM files f LEFT JOIN folders d ON d.id = f.folder_id LEFT JOIN files t ON t.id = f.renamed_to
                     ORDER BY f.path, f.deleted_at IS NOT NULL, t.path NULLS FIRST, f.version`),
    replicas: await q(`SELECT f.path AS file, f.deleted_at IS NOT NULL AS deleted, n.name AS node, r.version, r.path
                         FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id ORDER BY 1, 2, 3`),
    nodeWork: await q(`SELECT n.name AS node, f.path AS file, f.deleted_at IS NOT NULL AS deleted FROM node_work w JOIN files f ON f.id = w.file_id JOIN nodes n ON n.id = w.node_id ORDER BY 1, 2, 3`),
    queue: await q(`SELECT f.path AS file, q.reason FROM replication_queue q JOIN files f ON f.id = q.file_id ORDER BY 1`),
  };
}

/** Strip what legitimately differs (ids, seq, clocks) from an operation's result. */
function plain(v: unknown): unknown {
  if (v === null || v === undefined || typeof v !== 'object') return v ?? null;
  const o = { ...(v as Record<string, unknown>) };
  for (const k of ['id', 'seq', 'folderId', 'parentId', 'ctimeUs', 'mtimeUs', 'atimeUs', 'deletedAt']) {
    if (k in o) o[k] = o[k] === null ? null : typeof o[k];
  }
  if (o.replaced !== undefined) o.replaced = plain(o.replaced);
  return o;
}

async function scenario(t: Test, ops: Ops, run: Runner): Promise<{ results: unknown[]; notes: unknown[]; state: Record<string, unknown> }> {
  const { store } = await testStore(t);
  const [n1, n2] = await ensureNodes(store, ['n1', 'n2']);
  const id1 = n1!.id;
  const id2 = n2!.id;
  const put = async (path: string, nodeIds: number[]) => {
    for (const nodeId of nodeIds) await store.txn((tx) => commitFileVersion(tx, { path, size: 3, checksum: 'c'.repeat(64), mode: 0o640, uid: 7, gid: 8, mtimeUs: 1_000_000, classification: cls, nodeId }));
  };
  await put('/a/f1', [id1]);
  await put('/a/b/f2', [id1, id2]);
  await put('/a/b/c/f3', [id2]);
  await put('/c.txt', [id1, id2]);
  await put('/d.txt', [id1, id2]);
  await put('/e/x', [id1]);
  await put('/g.txt', [id1]);
  await put('/h.txt', [id1, id2]);
  await store.query(`UPDATE replicas SET path = '/old/h.txt' WHERE node_id = $1 AND file_id = (SELECT id FROM files WHERE path = '/h.txt')`, [id2]);
  await store.query('DELETE FROM node_work');

  const notes: unknown[] = [];
  const listener = await store.listen(META_CHANNEL, (p) => notes.push(JSON.parse(p)));
  t.teardown(() => listener.close());

  const results: unknown[] = [];
  const step = async (label: string, op: (db: Queryable) => Promise<unknown>) => {
    try {
      results.push([label, plain(await run(store, op))]);
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      results.push([label, 'error', e.name, e.code, e.message]);
    }
  };
  await step('mkdir', (db) => ops.makeFolder(db, '/m', { mode: 0o40750, uid: 5, gid: 6 }));
  await step('mkdir again', (db) => ops.makeFolder(db, '/m', { mode: 0o755, uid: 0, gid: 0 }));
  await step('mkdir over a file', (db) => ops.makeFolder(db, '/c.txt', { mode: 0o755, uid: 0, gid: 0 }));
  await step('mkdir deep', (db) => ops.makeFolder(db, '/new/deep/x', { mode: 0o700, uid: 1, gid: 2, mtimeUs: 4242 }));
  await step('mkdir under a file', (db) => ops.makeFolder(db, '/c.txt/sub/x', { mode: 0o755, uid: 0, gid: 0 }));
  await step('mkdir empty', (db) => ops.makeFolder(db, '/empty', { mode: 0o755, uid: 0, gid: 0 }));
  await step('chmod file', (db) => ops.setAttributes(db, '/g.txt', { mode: 0o100600 }));
  await step('utimens file', (db) => ops.setAttributes(db, '/g.txt', { mtimeUs: 4242, atimeUs: 4343 }));
  await step('chown folder', (db) => ops.setAttributes(db, '/m', { uid: 9, gid: 10, mtimeUs: 4242, atimeUs: 4343 }));
  await step('chmod unknown', (db) => ops.setAttributes(db, '/nope', { mode: 0o600 }));
  await step('unlink, n1 handled', (db) => ops.unlinkFile(db, '/d.txt', [id1]));
  await step('unlink unknown', (db) => ops.unlinkFile(db, '/nope', [id1, id2]));
  await step('unlink, n2 copy elsewhere', (db) => ops.unlinkFile(db, '/h.txt', [id1, id2], ['/h.txt', '/h.txt']));
  await step('rename file over file', (db) => ops.renamePath(db, '/c.txt', '/a/f1', [id1], [id1, id2]));
  await step('rename file to new folders', (db) => ops.renamePath(db, '/a/b/f2', '/q/r/f2', [id1, id2], [id1, id2], ['/a/b/f2', '/elsewhere']));
  await step('rename folder', (db) => ops.renamePath(db, '/a', '/z', [id1]));
  await step('rename folder over empty folder', (db) => ops.renamePath(db, '/z/b', '/empty', [id1, id2]));
  await step('rename folder over non-empty', (db) => ops.renamePath(db, '/e', '/z', [id1]));
  await step('rename file over folder', (db) => ops.renamePath(db, '/g.txt', '/m', [id1]));
  await step('rename folder over file', (db) => ops.renamePath(db, '/e', '/g.txt', [id1]));
  await step('rename unknown', (db) => ops.renamePath(db, '/nope', '/nope2', [id1]));
  await step('rename into itself', (db) => ops.renamePath(db, '/e', '/e/x/y', [id1]));
  await step('rename root', (db) => ops.renamePath(db, '/', '/r', [id1]));
  await step('rename into a file path', (db) => ops.renamePath(db, '/g.txt', '/e/x/g.txt', [id1]));
  await step('rename file, nothing handled', (db) => ops.renamePath(db, '/g.txt', '/g2.txt', []));
  await step('rmdir non-empty', (db) => ops.removeFolder(db, '/z'));
  await step('rmdir unknown', (db) => ops.removeFolder(db, '/nope'));
  await step('rmdir root', (db) => ops.removeFolder(db, '/'));
  await step('rmdir', (db) => ops.removeFolder(db, '/new/deep/x'));
  await store.query(`SELECT pg_notify($1, '"end"')`, [META_CHANNEL]);
  const until = Date.now() + 10_000;
  while (notes[notes.length - 1] !== 'end' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return { results, notes, state: await snapshot(store) };
}


t.test('one-statement namespace operations behave as the step-by-step ones', async (t) => {
  const want = await scenario(t, ref, inTxn);
  t.ok(want.results.some((r) => (r as unknown[])[1] === 'error'), 'the scenario has failing steps');
  t.ok((want.state.nodeWork as unknown[]).length > 0, 'the scenario leaves pending work');
  const got = await scenario(t, now, inTxn);
  t.same(got.results, want.results, 'same results and errors (in a transaction)');
  t.same(got.notes, want.notes, 'same announcements');
  t.same(got.state, want.state, 'same rows');
  const fast = await scenario(
    t,
    { makeFolder: now.makeFolderFast, removeFolder: now.removeFolderFast, unlinkFile: now.unlinkFileFast, renamePath: now.renamePathFast, setAttributes: now.setAttributesFast },
    (store, op) => op(store),
  );
  t.same(fast.results, want.results, 'same results and errors (fast path, no transaction)');
  t.same(fast.notes, want.notes, 'same announcements (fast path)');
  t.same(fast.state, want.state, 'same rows (fast path)');
});

t.test('a failing operation changes nothing, also on the fast path', async (t) => {
  const { store } = await testStore(t);
  const [n1] = await ensureNodes(store, ['n1']);
  await store.txn((tx) => commitFileVersion(tx, { path: '/d/f', size: 1, checksum: 'c'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  await store.txn((tx) => commitFileVersion(tx, { path: '/x', size: 1, checksum: 'c'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  const before = await snapshot(store);
  // the destination's parent is a file: the replaced-file unlink and tombstone must be undone with it
  await t.rejects(now.renamePathFast(store, '/d/f', '/x/f', [n1!.id]), { name: 'GeoError', code: 'CONFLICT' });
  await t.rejects(now.makeFolderFast(store, '/x/y', { mode: 0o755, uid: 0, gid: 0 }), { code: 'CONFLICT' });
  t.same(await snapshot(store), before, 'nothing changed');
});

t.test('a folder rename keeps names with characters outside the BMP whole', async (t) => {
  const { store } = await testStore(t);
  const [n1] = await ensureNodes(store, ['n1']);
  await store.txn((tx) => commitFileVersion(tx, { path: '/📷 photos/a.jpg', size: 1, checksum: 'c'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  await now.renamePathFast(store, '/📷 photos', '/🎞 films', [n1!.id]);
  const rows = await store.query<{ path: string }>('SELECT path FROM files WHERE deleted_at IS NULL UNION ALL SELECT path FROM replicas ORDER BY 1');
  t.same(rows.map((r) => r.path), ['/🎞 films/a.jpg', '/🎞 films/a.jpg']);
});

t.test('concurrent fast renames and unlinks of the same files all settle', async (t) => {
  const { store } = await testStore(t);
  const [n1] = await ensureNodes(store, ['n1']);
  for (let i = 0; i < 20; i++) {
    await store.txn((tx) => commitFileVersion(tx, { path: `/p/f${i}`, size: 1, checksum: 'c'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  }
  const ids = [n1!.id];
  // each file renamed onto its neighbour while others unlink: row locks taken in different orders
  const ops = Array.from({ length: 20 }, (_, i) =>
    i % 3 === 0 ? now.unlinkFileFast(store, `/p/f${i}`, ids) : now.renamePathFast(store, `/p/f${i}`, `/p/f${(i + 1) % 20}`, ids).catch((e: { code?: string }) => e.code),
  );
  const out = await Promise.all(ops);
  t.ok(out.every((r) => r === 'ENOENT' || r === null || typeof r === 'object'), 'every operation finished or found its file gone');
  const live = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM files WHERE deleted_at IS NULL');
  const reps = await store.query<{ n: number }>('SELECT count(*)::int AS n FROM replicas r JOIN files f ON f.id = r.file_id WHERE f.deleted_at IS NULL AND r.path = f.path');
  t.equal(reps[0]!.n, live[0]!.n, 'every live file has its replica at its path');
  t.equal((await store.query('SELECT 1 FROM node_work')).length, 0, 'no pending work: every node was handled');
});
