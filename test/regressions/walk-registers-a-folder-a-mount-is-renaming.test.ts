/**
 * Found by the soak (full form, a slow run): a folder rename through the
 * mount failed with EEXIST after it had already moved the folder on the
 * nodes, and nodes and metadata disagreed from then on (files "lost"). The
 * replicator's watch had seen the files appear under the new name and its
 * walk registered the new folder (and the files in it, as new files) before
 * the mount's metadata commit, which then found the name taken. The walk now
 * writes under the paths' locks and only what is still as it hashed it.
 */
import t from 'tap';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, replicaState, replicatorFor } from '../replicator/grid.js';
import { walk } from '../../src/replicator/walk.js';
import { renamePath } from '../../src/meta/fs-ops.js';

t.test('a walk during a folder rename between its node step and its commit', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'], classes: [{ name: 'default', pattern: '**', replicaTarget: 1, backupTarget: 0 }] });
  await writeTree(g.roots.n1!, { 'd/a.txt': 'alpha', 'd/sub/b.txt': 'beta' });
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);
  const ctx = await replicatorFor(t, g, 'n1');
  const n1 = await g.nodeId('n1');

  // the mount: holds /d and /e, has moved the folder on the node; the watch walks what appeared meanwhile
  await g.store.withPathLocks(['/d', '/e'], { mode: 'wait' }, async (db) => {
    await rename(path.join(g.roots.n1!, 'd'), path.join(g.roots.n1!, 'e'));
    const w = await walk(ctx, { subpath: '/e' });
    t.equal(w.registered, 0, 'nothing registered under the new name meanwhile');
    t.equal((await g.store.query('SELECT 1 FROM folders WHERE path = $1', ['/e'])).length, 0, 'the new folder is not in metadata before the mount commits');
    await db.txn((tx) => renamePath(tx, '/d', '/e', [n1]));
  });
  t.same(
    (await replicaState(g.store)).map((s) => s.path),
    ['/e/a.txt', '/e/sub/b.txt'],
    'the mount\'s commit went through: the files are under the new name, once each',
  );
  const again = await walk(ctx, { subpath: '/e' });
  t.equal(again.registered, 0, 'a later walk finds them known');
  t.equal(again.mismatches, 0);
  t.equal((await g.store.query('SELECT 1 FROM files WHERE deleted_at IS NULL')).length, 2, 'no file registered twice');
});
