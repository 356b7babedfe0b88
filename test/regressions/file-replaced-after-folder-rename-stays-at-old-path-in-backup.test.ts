/**
 * Found by the soak (fixed, backup agent): a file backed up at /d/a whose
 * folder is then renamed (/d -> /e, a subtree move: no per-file rename in the
 * feed) and which is then replaced by another file renamed over /e/a stayed
 * in the backup at /d/a for ever (deletion policy "delete"): the agent's index
 * was keyed by path, and the tombstone names /e/a, where the agent never had
 * it. The agent now tracks what it holds by file id.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { backupSetup, faultGrid, scanTree } from '../faults/lib.js';

t.test('the backup follows renames and deletes made through the mount', async (t) => {
  const g = await faultGrid(t, { nodes: 2 });
  const m = await g.mount();
  const bk = await backupSetup(t, g);
  await bk.startApi();
  const mp = (p: string) => path.join(m.mountpoint, p);
  await fs.mkdir(mp('d/sub'), { recursive: true });
  for (const f of ['d/a', 'd/sub/b', 'top1', 'top2', 'top3']) await fs.writeFile(mp(f), `content of ${f}`);
  const first = await bk.replicate();
  t.equal(first.code, 0, 'first backup run', { out: first.stdout + first.stderr });
  await fs.rename(mp('d'), mp('e'));
  await fs.rename(mp('top1'), mp('e/top1-moved'));
  await fs.unlink(mp('top2'));
  await fs.rename(mp('top3'), mp('e/a')); // over an existing file
  const second = await bk.replicate();
  t.equal(second.code, 0, 'second backup run', { out: second.stdout + second.stderr });
  const grid = await scanTree(m.mountpoint);
  const backup = await scanTree(bk.folder);
  t.same([...backup.files.keys()].sort(), [...grid.files.keys()].sort(), 'the backup holds exactly the paths of the grid', { out: second.stdout });
  for (const [p, h] of grid.files) t.equal(backup.files.get(p), h, `${p} has the grid's bytes`);
});
