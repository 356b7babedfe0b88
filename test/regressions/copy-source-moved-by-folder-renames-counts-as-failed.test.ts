/**
 * Found by the soak (full form, both seeds, on and off for three sessions):
 * a cron `replicate` run counted a failed copy — source n1 "ENOENT
 * /w0/m0-706/m0-632/m0-420/f0-692" — although nothing was wrong: with the
 * debug logs, the writers had renamed a folder above the file twice within a
 * second (m0-597 -> m0-706 -> m0-710). Each time the copy read its source
 * between the mount's node step (the bytes moved) and its metadata commit;
 * a source that vanishes twice in a row while metadata shows it unchanged
 * counts as a failure (the commit of the first rename made the file due again
 * at once, so the "look again in 5 s" did not help).
 *
 * A copy whose source vanished now waits for the path's grid-wide locks
 * (shared: a change in progress is waited for, nothing else) before it looks
 * at metadata again. The mount's side is played here as the mount does it,
 * with its locks.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, settle, assertDisksMatchMetadata, replicaState, sha256, replicatorFor } from '../replicator/grid.js';
import { replicate } from '../../src/replicator/replicate.js';
import { renamePath } from '../../src/meta/fs-ops.js';

t.test('a copy whose source a folder rename is moving waits for the rename, twice in a row', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const body = randomBytes(50_000);
  await writeTree(g.roots.n1!, { 'd/x': body });
  const w = await g.run('n1', ['replicator', 'walk']);
  t.equal(w.code, 0, w.stdout + w.stderr);
  const ids = await Promise.all(['n1', 'n2'].map((n) => g.nodeId(n)));
  const ctx = await replicatorFor(t, g, 'n2');

  // the mount renames folder `from` to `to`: its locks, the node step, then its commit a moment later
  const mountRename = async (from: string, to: string) => {
    let nodeStepDone!: () => void;
    const nodeStep = new Promise<void>((r) => (nodeStepDone = r));
    const op = g.store.withPathLocks([from, to], { mode: 'wait' }, async (db) => {
      // on every node that has the folder, as the mount does
      for (const root of Object.values(g.roots)) await rename(path.join(root, from), path.join(root, to)).catch(() => undefined);
      nodeStepDone();
      await new Promise((r) => setTimeout(r, 800));
      await db.txn((tx) => renamePath(tx, from, to, ids));
    });
    await nodeStep;
    return op;
  };

  const first = mountRename('/d', '/e');
  const run1 = await replicate(ctx);
  await first;
  t.equal(run1.failed, 0, 'first run: the vanished source is not a failure');
  const second = mountRename('/e', '/f');
  const run2 = await replicate(ctx);
  await second;
  t.equal(run2.failed, 0, 'second run, the folder moved again meanwhile: still not a failure');
  await settle(g, ['n1', 'n2']);
  t.same(await replicaState(g.store), [{ path: '/f/x', target: 2, nodes: ['n1', 'n2'] }], 'both copies under the final name');
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'f/x'))), sha256(body), 'n2 holds the bytes');
  await assertDisksMatchMetadata(t, g);
});
