/**
 * The replicator racing the mount's namespace operations (found by the soak).
 * The mount's side is played here as the mount does it: the change on every
 * node folder first, then the metadata commit (src/meta/fs-ops.ts), so each
 * interleaving can be put exactly between two steps of a copy (throttled
 * copies, or the replicator's test hooks). Real PostgreSQL, real files.
 *
 * 1. the replicator temp file can be left in a renamed folder
 * 2. emptied/removed folders reappear (the replicator re-created them)
 * 3. a copy recorded at a path its file no longer has: converges, also when
 *    the old path is taken by another file and when a folder rename carried
 *    the copy to neither path
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, settle, assertDisksMatchMetadata, fileExists, replicaState, sha256, replicatorFor, type Grid } from './grid.js';
import { replicate } from '../../src/replicator/replicate.js';
import { renamePath, unlinkFile, removeFolder } from '../../src/meta/fs-ops.js';

/** Names under a node root, recursively (folders end in /), the node marker left out. */
async function nodeEntries(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const r = `${rel}/${e.name}`;
      if (r === '/.ggfs-node') continue;
      if (e.isDirectory()) {
        out.push(r + '/');
        await visit(path.join(dir, e.name), r);
      } else out.push(r);
    }
  };
  await visit(root, '');
  return out.sort();
}

/** User-visible leftovers: reserved (.ggfs-*) names anywhere but the root-level temp folder. */
function strayReserved(entries: string[]): string[] {
  return entries.filter((e) => e.split('/').slice(2).some((part) => part.startsWith('.ggfs-')) || (/^\/\.ggfs-/.test(e) && !e.startsWith('/.ggfs-tmp/')));
}

type Tap = { teardown(fn: () => unknown): void };

/** The mount's rename: on every node folder that has `from`, then in metadata for the nodes given. */
async function mountRename(g: Grid, from: string, to: string, opts: { nodes?: string[]; handled?: string[] } = {}): Promise<void> {
  for (const n of opts.nodes ?? Object.keys(g.roots)) {
    const src = path.join(g.roots[n]!, from);
    if (await fileExists(src)) {
      await mkdir(path.dirname(path.join(g.roots[n]!, to)), { recursive: true });
      await rename(src, path.join(g.roots[n]!, to));
    }
  }
  await commitRename(g, from, to, opts.handled ?? opts.nodes ?? Object.keys(g.roots));
}

async function commitRename(g: Grid, from: string, to: string, handled: string[]): Promise<void> {
  const ids = await Promise.all(handled.map((n) => g.nodeId(n)));
  await g.store.txn((tx) => renamePath(tx, from, to, ids));
}

/** The mount's unlink of a file and rmdir of its (then empty) folder, node folders first; `commit` false leaves metadata for later. */
async function mountRemove(g: Grid, file: string, commit = true): Promise<string[]> {
  const errors: string[] = [];
  for (const root of Object.values(g.roots)) await unlink(path.join(root, file)).catch(() => undefined);
  for (const root of Object.values(g.roots)) {
    await rmdir(path.join(root, path.dirname(file))).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') errors.push(`${root}: ${err.code}`);
    });
  }
  if (commit) await commitRemove(g, file);
  return errors;
}

async function commitRemove(g: Grid, file: string): Promise<void> {
  const ids = await Promise.all(Object.keys(g.roots).map((n) => g.nodeId(n)));
  await g.store.txn(async (tx) => {
    await unlinkFile(tx, file, ids);
    await removeFolder(tx, path.dirname(file));
  });
}

/** Wait until a copy to `root` is streaming (its temp file exists, wherever the replicator keeps it). */
async function copyStarted(root: string, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if ((await nodeEntries(root)).some((e) => /\/\.ggfs-(part-|tmp\/replica-)/.test(e))) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

async function problems(g: Grid): Promise<string[]> {
  return (await g.store.query<{ kind: string; detail: string }>('SELECT kind, detail FROM problems ORDER BY id')).map((p) => `${p.kind}: ${p.detail}`);
}

/** n1 holds /d/big.bin (and /d/keep), registered by a walk; n2 is to copy them. */
async function gridWithFolder(t: Tap, throttled: boolean): Promise<{ g: Grid; big: Buffer }> {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'], replicator: throttled ? { copyBytesPerSec: 4 * 2 ** 20, concurrency: 1 } : {} });
  const big = randomBytes(throttled ? 6 * 2 ** 20 : 70_000);
  await writeTree(g.roots.n1!, { 'd/big.bin': big });
  const w = await g.run('n1', ['replicator', 'walk']);
  if (w.code !== 0) throw new Error(w.stdout + w.stderr);
  return { g, big };
}

t.test('1: a folder renamed while a copy into it streams keeps no replicator temp file', async (t) => {
  const { g, big } = await gridWithFolder(t, true);
  const ctx = await replicatorFor(t, g, 'n2');
  const run = replicate(ctx);
  t.ok(await copyStarted(g.roots.n2!), 'the copy started');
  await mountRename(g, '/d', '/e');
  const s = await run;
  t.equal(s.failed, 0, 'the race is no failure');
  t.same(strayReserved(await nodeEntries(g.roots.n2!)), [], 'no .ggfs-* file left in a user folder on n2');
  t.notOk(await fileExists(path.join(g.roots.n2!, 'd')), 'the old folder was not made again on n2');
  await settle(g, ['n1', 'n2']);
  t.same(await replicaState(g.store), [{ path: '/e/big.bin', target: 2, nodes: ['n1', 'n2'] }], 'at target under its new path');
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'e/big.bin'))), sha256(big));
  await assertDisksMatchMetadata(t, g);
  t.same(await nodeEntries(g.roots.n2!), ['/.ggfs-tmp/', '/e/', '/e/big.bin'], 'n2 holds the file and nothing else');
  t.same(await problems(g), [], 'no problem recorded');
});

t.test('2: a file deleted and its folder removed while a copy streams: the removal works, the folder stays gone', async (t) => {
  const { g } = await gridWithFolder(t, true);
  const ctx = await replicatorFor(t, g, 'n2');
  const run = replicate(ctx);
  t.ok(await copyStarted(g.roots.n2!), 'the copy started');
  const errors = await mountRemove(g, '/d/big.bin');
  t.same(errors, [], 'rmdir of the emptied folder succeeded on every node (no temp file inside it)');
  const s = await run;
  t.equal(s.failed, 0, 'the race is no failure');
  t.same(await nodeEntries(g.roots.n2!), ['/.ggfs-tmp/'], 'right after the run: no folder, no copy, no temp file on n2');
  await settle(g, ['n1', 'n2']);
  for (const n of ['n1', 'n2']) t.same((await nodeEntries(g.roots[n]!)).filter((e) => !e.startsWith('/.ggfs-tmp')), [], `${n} is empty`);
  t.same(await problems(g), []);
});

t.test('2b: removed between the node step and the metadata commit, around the placement: the folder the copy made goes again', async (t) => {
  const { g } = await gridWithFolder(t, false);
  let fired = 0;
  const ctx = await replicatorFor(t, g, 'n2', {
    // the mount removed the file and folder on the nodes (n2 has no /d yet); its commit comes after the copy is placed
    afterTempCopy: async () => {
      fired++;
      await mountRemove(g, '/d/big.bin', false);
    },
    afterPlace: async () => {
      fired++;
      t.ok(await fileExists(path.join(g.roots.n2!, 'd/big.bin')), 'placed (metadata still showed the file)');
      await commitRemove(g, '/d/big.bin');
    },
  });
  const s = await replicate(ctx);
  t.equal(fired, 2, 'both hooks ran');
  t.equal(s.failed, 0);
  t.same(await nodeEntries(g.roots.n2!), ['/.ggfs-tmp/'], 'the copy and the folder it made are gone at once');
  t.equal((await g.store.query('SELECT 1 FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE n.name = $1', ['n2'])).length, 0, 'no replica recorded on n2');
  await settle(g, ['n1', 'n2']);
  for (const n of ['n1', 'n2']) t.same((await nodeEntries(g.roots[n]!)).filter((e) => !e.startsWith('/.ggfs-tmp')), [], `${n} is empty`);
  t.same(await problems(g), []);
});

t.test('2c: a folder that existed before the copy is never removed by its undo', async (t) => {
  const { g } = await gridWithFolder(t, false);
  await mkdir(path.join(g.roots.n2!, 'd')); // as the mount's mkdir made it on every node
  let fired = 0;
  const ctx = await replicatorFor(t, g, 'n2', {
    afterPlace: async () => {
      if (fired++) return;
      for (const root of Object.values(g.roots)) await unlink(path.join(root, 'd/big.bin'));
      const ids = await Promise.all(['n1', 'n2'].map((n) => g.nodeId(n)));
      await g.store.txn((tx) => unlinkFile(tx, '/d/big.bin', ids));
    },
  });
  await replicate(ctx);
  t.same(await nodeEntries(g.roots.n2!), ['/.ggfs-tmp/', '/d/'], 'n2 had /d before the copy: it stays (the user did not remove it)');
});

t.test('3a: renamed and then its folder renamed between placement and record: the copy is at neither path, nothing is left behind', async (t) => {
  const { g, big } = await gridWithFolder(t, false);
  let fired = 0;
  const ctx = await replicatorFor(t, g, 'n2', {
    afterPlace: async () => {
      if (fired++) return; // once: the run looks at the file again after it moved
      // the mount renamed the file on n1 only (n2's copy was not there yet when it looked), then the whole folder everywhere
      await mountRename(g, '/d/big.bin', '/d/moved.bin', { nodes: ['n1'] });
      await mountRename(g, '/d', '/e');
    },
  });
  const s = await replicate(ctx);
  t.equal(s.failed, 0);
  t.notOk(await fileExists(path.join(g.roots.n2!, 'e/big.bin')), 'the copy a folder rename carried to /e/big.bin is not left there');
  await settle(g, ['n1', 'n2']);
  t.same(await replicaState(g.store), [{ path: '/e/moved.bin', target: 2, nodes: ['n1', 'n2'] }]);
  await assertDisksMatchMetadata(t, g);
  t.same(await nodeEntries(g.roots.n2!), ['/.ggfs-tmp/', '/e/', '/e/moved.bin']);
  t.same(await problems(g), [], 'no problem recorded');
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'e/moved.bin'))), sha256(big));
});

t.test('3b: renamed between placement and record, the rename carried the copy: recorded at the new path', async (t) => {
  const { g } = await gridWithFolder(t, false);
  let fired = 0;
  const ctx = await replicatorFor(t, g, 'n2', {
    afterPlace: async () => {
      if (!fired++) await mountRename(g, '/d/big.bin', '/d/moved.bin');
    },
  });
  const s = await replicate(ctx);
  t.equal(s.copied, 1);
  const rows = await g.store.query<{ path: string }>('SELECT r.path FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE n.name = $1', ['n2']);
  t.same(rows, [{ path: '/d/moved.bin' }], 'n2 replica recorded where its bytes are');
  await settle(g, ['n1', 'n2']);
  await assertDisksMatchMetadata(t, g);
  t.same(await problems(g), []);
});

t.test('3c: rows recorded at an old path converge: the old path reused by another file; a copy carried by a folder rename to neither path', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const a = Buffer.from('file A, renamed away from /d/x\n');
  const b = Buffer.from('file B, now at /d/x\n');
  const c = randomBytes(5000);
  await writeTree(g.roots.n1!, { 'd/x': a, 'f/p': c });
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);
  await settle(g, ['n1', 'n2']);
  const n2 = await g.nodeId('n2');

  // A renamed /d/x -> /d/y while n2 was away: n2's row stays at /d/x (a pending rename) ...
  await mountRename(g, '/d/x', '/d/y', { nodes: ['n1'] });
  // ... then a new file B at /d/x, written through the mount onto n1 and n2 (n2's bytes of A are replaced)
  await writeTree(g.roots.n1!, { 'd/x': b });
  t.equal((await g.run('n1', ['replicator', 'walk', '-p', '/d/x'])).code, 0);
  await writeFile(path.join(g.roots.n2!, 'd/x'), b);
  await g.store.query(`INSERT INTO replicas (file_id, node_id, version, path, verified_at) SELECT id, $1, version, path, now() FROM files WHERE path = '/d/x' AND deleted_at IS NULL`, [n2]);

  // C: n2's copy recorded at /f/old (the path planned by a run before C moved), C now /f/q; then /f renamed to /g everywhere,
  // which carried n2's bytes to /g/old: neither the row's path nor the file's
  await rename(path.join(g.roots.n2!, 'f/p'), path.join(g.roots.n2!, 'f/old'));
  await g.store.query(`UPDATE replicas SET path = '/f/old' WHERE node_id = $1 AND file_id = (SELECT id FROM files WHERE path = '/f/p' AND deleted_at IS NULL)`, [n2]);
  await mountRename(g, '/f/p', '/f/q', { nodes: ['n1'], handled: ['n1'] });
  await mountRename(g, '/f', '/g');

  await settle(g, ['n1', 'n2']);
  const state = await replicaState(g.store);
  t.same(state.map((s) => [s.path, s.nodes]), [['/d/x', ['n1', 'n2']], ['/d/y', ['n1', 'n2']], ['/g/q', ['n1', 'n2']]], 'every file at target under its path');
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'd/x'))), sha256(b), "B's bytes were not moved away as A's");
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'd/y'))), sha256(a), "A's copy on n2 holds A's bytes");
  await assertDisksMatchMetadata(t, g);
  t.same(await problems(g), [], 'no problem recorded (no copy declared missing)');
});
