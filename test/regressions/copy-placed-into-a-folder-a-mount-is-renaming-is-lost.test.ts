/**
 * Found by the soak (full form), a lost copy: a mount renamed a folder, /d
 * to /e, on every node (its first step), and its metadata commit then waited
 * for the file's row lock, which the n2 replicator held while placing a copy
 * of /d/big.bin: metadata still said /d, so the copy went to /d/big.bin on
 * n2, making /d again there; the mount's commit then moved n2's replica row
 * to /e/big.bin, where n2 had nothing. The file counted two copies and had
 * one; with a later loss of the other, it was gone.
 *
 * Every process that changes bytes at a node path now holds that path's
 * grid-wide lock (exclusive; shared on the folders above) from its decision
 * to its metadata record (sql/0004). The mount's side is played here as the
 * mount does it, with its locks; the replicator finds the path locked,
 * places nothing, and copies to the new path on its next pass.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, settle, assertDisksMatchMetadata, fileExists, replicaState, sha256, replicatorFor } from '../replicator/grid.js';
import { replicate } from '../../src/replicator/replicate.js';
import { renamePath } from '../../src/meta/fs-ops.js';

t.test('a folder rename between its node step and its commit, around a copy placed into it', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const big = randomBytes(70_000);
  await writeTree(g.roots.n1!, { 'd/big.bin': big });
  const w = await g.run('n1', ['replicator', 'walk']);
  t.equal(w.code, 0, w.stdout + w.stderr);
  await mkdir(path.join(g.roots.n2!, 'd')); // as the mount's mkdir made it on every node

  // the mount: locks /d and /e, renames the folder on both nodes, and commits only when told to
  let commit!: () => void;
  const committed = new Promise<void>((r) => (commit = r));
  let nodeStepDone!: () => void;
  const nodeStep = new Promise<void>((r) => (nodeStepDone = r));
  let mountOp: Promise<void> | null = null;
  const ctx = await replicatorFor(t, g, 'n2');
  ctx.hooks = {
    // the copy of /d/big.bin is in its temp file; now the mount's rename starts
    afterTempCopy: async () => {
      if (mountOp) return;
      mountOp = g.store.withPathLocks(['/d', '/e'], { mode: 'wait' }, async (db) => {
        for (const root of Object.values(g.roots)) await rename(path.join(root, 'd'), path.join(root, 'e'));
        nodeStepDone();
        await committed;
        const ids = await Promise.all(['n1', 'n2'].map((n) => g.nodeId(n)));
        await db.txn((tx) => renamePath(tx, '/d', '/e', ids));
      });
      await nodeStep;
    },
  };
  const first = await replicate(ctx);
  t.equal(first.copied, 0, 'nothing placed while the mount held the folder');
  t.notOk(await fileExists(path.join(g.roots.n2!, 'd')), 'the renamed folder was not made again on n2');
  t.equal(first.deferred, 1, 'the copy was deferred');
  commit();
  await mountOp;
  await new Promise((r) => setTimeout(r, 1100)); // the deferred copy is due again after a second
  await settle(g, ['n1', 'n2']);
  t.same(await replicaState(g.store), [{ path: '/e/big.bin', target: 2, nodes: ['n1', 'n2'] }], 'both copies under the new path');
  t.equal(sha256(await readFile(path.join(g.roots.n2!, 'e/big.bin'))), sha256(big), 'n2 really holds it there');
  t.notOk(await fileExists(path.join(g.roots.n2!, 'd')), 'and nothing at the old path');
  await assertDisksMatchMetadata(t, g);
});
