/**
 * Two mounts of one grid (two processes, as on two web servers) see each
 * other's changes at once: metadata first, caches invalidated by NOTIFY.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sleep } from '../helpers/mount.js';

/** Poll `fn` until it returns true (at most `ms`); returns the time it took or -1. */
async function within(ms: number, fn: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 <= ms) {
    if (await fn().catch(() => false)) return Date.now() - t0;
    await sleep(10);
  }
  return -1;
}

t.test('a change through mount A is visible through mount B at once', async (t) => {
  const grid = await makeGrid(t);
  const a = await grid.mount();
  const b = await grid.mount();
  const A = (p: string) => path.join(a.mountpoint, p);
  const B = (p: string) => path.join(b.mountpoint, p);

  await fs.writeFile(A('x.txt'), '0123456789');
  const st = await fs.stat(B('x.txt'));
  t.equal(st.size, 10, 'B sees the new file with its size right after A closed it');
  t.equal(await fs.readFile(B('x.txt'), 'utf8'), '0123456789', 'and reads its bytes');

  await fs.appendFile(A('x.txt'), 'abcde');
  const grew = await within(2000, async () => (await fs.stat(B('x.txt'))).size === 15);
  t.ok(grew >= 0, `B sees the new size (after ${grew} ms; kernel attr cache ${1}s at most)`);
  t.equal(await fs.readFile(B('x.txt'), 'utf8'), '0123456789abcde', 'B reads the new bytes');

  await fs.mkdir(A('d'));
  await fs.writeFile(A('d/in.txt'), 'in');
  t.same((await fs.readdir(B('d'))).sort(), ['in.txt'], 'B lists a folder A just made');

  await fs.rename(A('d'), A('d2'));
  const moved = await within(2000, async () => (await fs.readFile(B('d2/in.txt'), 'utf8')) === 'in' && !(await fs.stat(B('d')).then(() => true, () => false)));
  t.ok(moved >= 0, `B sees a folder rename (after ${moved} ms)`);

  await fs.unlink(B('x.txt'));
  const gone = await within(2000, async () => !(await fs.stat(A('x.txt')).then(() => true, () => false)));
  t.ok(gone >= 0, `A sees B's unlink (after ${gone} ms)`);
  t.same((await fs.readdir(A('.'))).sort(), ['d2'], 'A lists what B left');

  // a file put on a node by hand (before any walk) is visible through the mounts
  await fs.mkdir(path.join(grid.nodes.n2!, 'byhand'), { recursive: true });
  await fs.writeFile(path.join(grid.nodes.n2!, 'byhand', 'placed.txt'), 'placed by hand');
  t.same((await fs.readdir(A('.'))).sort(), ['byhand', 'd2'], 'the hand-placed folder is listed');
  t.equal(await fs.readFile(B('byhand/placed.txt'), 'utf8'), 'placed by hand', 'and its file reads');
  const rows = await grid.store.query(`SELECT 1 FROM files WHERE path = '/byhand/placed.txt'`);
  t.equal(rows.length, 0, 'reading it did not register it (read-only opens never write metadata)');
});
