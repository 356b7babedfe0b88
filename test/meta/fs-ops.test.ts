/** The mount's metadata operations against a real PostgreSQL: fast commit, rename of a subtree with pending work, unlink. */
import t from 'tap';
import { testStore } from '../helpers/db.js';
import { commitFileVersion, getFile, replicasOf, META_CHANNEL } from '../../src/meta/files.js';
import { commitVersionFast, makeFolder, renamePath, unlinkFile, MetaFsError } from '../../src/meta/fs-ops.js';
import { ensureNodes } from '../../src/meta/nodes.js';

const cls = { class: 'default', replicaTarget: 2, backupTarget: 1 };
const v = (path: string, nodeId: number, checksum = 'a'.repeat(64), size = 3) => ({ path, size, checksum, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1_000_000, classification: cls, nodeId });

t.test('commitVersionFast does what commitFileVersion does, in one statement', async (t) => {
  const { store } = await testStore(t);
  const [n1, n2] = await ensureNodes(store, ['n1', 'n2']);
  const row = await commitVersionFast(store, v('/a.txt', n1!.id), META_CHANNEL, '{}');
  t.ok(row, 'new file in a known folder');
  t.equal(row!.version, 1);
  await commitFileVersion(store, { ...v('/a.txt', n2!.id) }); // n2 has version 2 now
  const bumped = await commitVersionFast(store, v('/a.txt', n1!.id, 'b'.repeat(64), 5), META_CHANNEL, '{}');
  t.equal(bumped!.version, 3, 'version bumped');
  t.equal(bumped!.size, 5);
  const reps = await replicasOf(store, bumped!.id);
  t.same(reps.map((r) => [r.nodeName, r.version]), [['n1', 3], ['n2', 2]], 'this node current, the other stale');
  t.equal(await commitVersionFast(store, v('/no/such/dir/f', n1!.id), META_CHANNEL, '{}'), null, 'unknown parent: slow path');
  await makeFolder(store, '/d', { mode: 0o755, uid: 0, gid: 0 });
  t.equal(await commitVersionFast(store, v('/d', n1!.id), META_CHANNEL, '{}'), null, 'a folder at the path: slow path');
});

t.test('rename of a subtree in one transaction, pending work for a node that was down', async (t) => {
  const { store } = await testStore(t);
  const [n1, n2] = await ensureNodes(store, ['n1', 'n2']);
  await commitFileVersion(store, v('/x/y/f1', n1!.id));
  await commitFileVersion(store, v('/x/f2', n1!.id));
  const f1 = (await getFile(store, '/x/y/f1'))!;
  await store.query('INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, $3)', [f1.id, n2!.id, '/x/y/f1']);
  await store.txn((tx) => renamePath(tx, '/x', '/z', [n1!.id]));
  t.ok(await getFile(store, '/z/y/f1'), 'moved');
  t.equal(await getFile(store, '/x/y/f1'), null, 'old path has no live file');
  const tomb = await store.query<{ n: number }>(`SELECT count(*)::int AS n FROM files WHERE path LIKE '/x/%' AND deleted_at IS NOT NULL`);
  t.equal(tomb[0]!.n, 2, 'tombstones at the old paths');
  const reps = await replicasOf(store, f1.id);
  t.same(reps.map((r) => [r.nodeName, r.path]).sort(), [['n1', '/z/y/f1'], ['n2', '/x/y/f1']], 'n2 (not handled) keeps the old path: a pending rename');
  const err = await store.txn((tx) => renamePath(tx, '/z', '/z/inside', [n1!.id])).catch((e: MetaFsError) => e.code);
  t.equal(err, 'EINVAL');
  const gone = await store.txn((tx) => unlinkFile(tx, '/z/f2', [n1!.id]));
  t.ok(gone, 'unlinked');
  t.same(await replicasOf(store, gone!.id), [], 'handled replicas dropped');
});

t.test('a folder rename moves every row under it on a handled node: pending renames and deletes too', async (t) => {
  const { store } = await testStore(t);
  const [n1, n2] = await ensureNodes(store, ['n1', 'n2']);
  await commitFileVersion(store, v('/x/a', n1!.id));
  await commitFileVersion(store, v('/out', n1!.id));
  await commitFileVersion(store, v('/x/dead', n1!.id));
  await commitFileVersion(store, v('/x2/sib', n1!.id));
  const a = (await getFile(store, '/x/a'))!;
  const out = (await getFile(store, '/out'))!;
  const sib = (await getFile(store, '/x2/sib'))!;
  // n1 has not applied a rename /x/old-a -> /x/a, nor /x/was-out -> /out; n2 holds /x/a where it belongs
  await store.query(`UPDATE replicas SET path = '/x/old-a' WHERE file_id = $1 AND node_id = $2`, [a.id, n1!.id]);
  await store.query(`UPDATE replicas SET path = '/x/was-out' WHERE file_id = $1 AND node_id = $2`, [out.id, n1!.id]);
  await store.query('INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, $3)', [a.id, n2!.id, '/x/a']);
  // a pending delete on n1: unlinked with no node handled
  const dead = (await store.txn((tx) => unlinkFile(tx, '/x/dead', [])))!;
  await store.txn((tx) => renamePath(tx, '/x', '/z', [n1!.id]));
  const paths = async (id: number) => (await replicasOf(store, id)).map((r) => [r.nodeName, r.path]).sort();
  t.same(await paths(a.id), [['n1', '/z/old-a'], ['n2', '/x/a']], "n1's pending rename moved with the folder; n2 (not handled) pending");
  t.same(await paths(out.id), [['n1', '/z/was-out']], 'a pending row of a file outside the folder moved too');
  t.same(await paths(dead.id), [['n1', '/z/dead']], 'a pending delete moved with its bytes');
  t.same(await paths(sib.id), [['n1', '/x2/sib']], 'a sibling folder with the same prefix stays');
  const work = await store.query<{ node_id: number; file_id: number }>('SELECT node_id, file_id FROM node_work ORDER BY file_id, node_id');
  t.ok(work.some((w) => w.node_id === n1!.id && w.file_id === a.id), 'n1 still has the rename of /z/old-a to do');
});
