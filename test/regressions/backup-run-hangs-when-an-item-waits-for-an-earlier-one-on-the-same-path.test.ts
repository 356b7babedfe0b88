/**
 * Found by the soak (full form): a `backup replicate` run hung until cron's
 * time-out killed it. Download slots were handed out in feed order by places
 * in line taken when a page was read; an item that had to wait for an
 * earlier item on the same path (a file deleted and made again at that
 * path) got its queue slot only after later items had taken all of them,
 * and those later items waited for its place in line: nothing moved. Places
 * in line are now taken when an item starts.
 */
import t from 'tap';
import path from 'node:path';
import { makeGrid } from '../api/grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { Mirror, diffTrees, runAgent } from '../backup/agent-fixture.js';

t.test('a path deleted and made again, followed by more items than download slots', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  await m.put('/x', 'first x');
  const first = await runAgent(g, backup, { concurrency: 1 });
  t.equal(first.downloaded, 1);

  await m.del('/x');
  await m.put('/x', 'second x, another file at the same path');
  for (let i = 0; i < 8; i++) await m.put(`/more/f${i}`, `file ${i}`);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 30_000)));
  const s = await Promise.race([runAgent(g, backup, { concurrency: 1, deletion: 'delete' }), hung]);
  clearTimeout(timer);
  if (s === 'hung') {
    t.fail('the run did not finish within 30 s');
    return;
  }
  t.equal(s.failed, 0);
  t.equal(s.downloaded, 9, 'the new /x and the 8 others');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
});
