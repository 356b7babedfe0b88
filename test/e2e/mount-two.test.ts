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

t.test('an append through one mount lands at the end of a version the other mount just wrote (its cached size is stale)', async (t) => {
  const grid = await makeGrid(t);
  const a = await grid.mount();
  const b = await grid.mount();
  const A = (p: string) => path.join(a.mountpoint, p);
  const B = (p: string) => path.join(b.mountpoint, p);
  await fs.writeFile(A('log.txt'), 'short\n');
  t.equal((await fs.stat(B('log.txt'))).size, 6, 'B has the size cached');
  const big = 'x'.repeat(100_000) + '\n';
  await fs.writeFile(A('log.txt'), big); // B's kernel still believes 6 bytes for up to a second
  await fs.appendFile(B('log.txt'), 'appended by B\n');
  const want = big + 'appended by B\n';
  t.equal(await fs.readFile(A('log.txt'), 'utf8').then((s) => s === want), true, 'A reads the new version with B\'s line at its end');
  const settled = await within(3000, async () => (await fs.readFile(B('log.txt'), 'utf8')) === want);
  t.ok(settled >= 0, 'B reads the same once its attribute cache expired');
  t.equal((await grid.store.query<{ size: number }>(`SELECT size FROM files WHERE path = '/log.txt' AND deleted_at IS NULL`))[0]?.size, want.length, 'metadata has the full size');
});

t.test('a file open for writing twice in one mount is one file; a reader there sees unclosed writes', async (t) => {
  const grid = await makeGrid(t);
  const a = await grid.mount();
  const A = (p: string) => path.join(a.mountpoint, p);
  const w1 = await fs.open(A('shared.txt'), 'w');
  await w1.write('hello ', 0);
  const w2 = await fs.open(A('shared.txt'), 'r+');
  await w2.write('world', 6);
  const r = await fs.open(A('shared.txt'), 'r');
  const buf = Buffer.alloc(32);
  const { bytesRead } = await r.read(buf, 0, 32, 0);
  t.equal(buf.subarray(0, bytesRead).toString(), 'hello world', 'the reader sees both writers\' bytes before any close');
  await w2.close();
  await w1.close();
  await r.close();
  t.equal(await fs.readFile(A('shared.txt'), 'utf8'), 'hello world', 'after close the file holds both writes');
  const rows = await grid.store.query<{ size: number }>(`SELECT size FROM files WHERE path = '/shared.txt' AND deleted_at IS NULL`);
  t.equal(rows[0]?.size, 11);
  const tmp = await Promise.all(Object.values(grid.nodes).map((root) => fs.readdir(path.join(root, '.ggfs-tmp')).catch(() => [] as string[])));
  t.same(tmp.flat(), [], 'no temp file left on any node');
});
