/**
 * PostgreSQL stopped under a running mount: it keeps serving from the nodes,
 * journals its metadata changes, and replays them when the server is back —
 * nothing written is lost. Uses its own embedded server so it can stop it.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { makeGrid, sleep } from '../helpers/mount.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';

t.test('database down: the mount serves, journals, and replays', async (t) => {
  const pgDir = await scratchDir('pgdown-');
  const { url } = await ensureEmbedded(pgDir);
  const grid = await makeGrid(t, { url });
  t.teardown(() => stopEmbedded(pgDir).catch(() => undefined));
  const m = await grid.mount();
  const P = (p: string) => path.join(m.mountpoint, p);
  await fs.writeFile(P('before.txt'), 'written before');
  await fs.writeFile(P('doomed.txt'), 'to be deleted');

  t.ok(await stopEmbedded(pgDir), 'PostgreSQL stopped');
  t.equal(await fs.readFile(P('before.txt'), 'utf8'), 'written before', 'existing file still reads');
  t.same((await fs.readdir(P('.'))).sort(), ['before.txt', 'doomed.txt'], 'listing from the nodes');
  await fs.writeFile(P('during.txt'), 'written while the database was down');
  await fs.mkdir(P('dd'));
  await fs.writeFile(P('dd/f.bin'), Buffer.alloc(70_000, 1));
  await fs.rename(P('before.txt'), P('dd/renamed.txt'));
  await fs.unlink(P('doomed.txt'));
  await fs.chmod(P('during.txt'), 0o600);
  t.same((await fs.readdir(P('.'))).sort(), ['dd', 'during.txt'], 'changes visible while down');
  t.equal((await fs.stat(P('during.txt'))).size, 35, 'size of a file written while down');

  await ensureEmbedded(pgDir);
  let replayed = false;
  for (let i = 0; i < 150 && !replayed; i++) {
    const r = await grid.store.query<{ n: number }>(`SELECT count(*)::int AS n FROM files WHERE path = '/dd/f.bin' AND deleted_at IS NULL`).catch(() => [{ n: 0 }]);
    replayed = r[0]!.n === 1;
    if (!replayed) await sleep(100);
  }
  t.ok(replayed, 'journal replayed after the restart');
  await sleep(300);
  const live = await grid.store.query<{ path: string; size: number; checksum: string; mode: number }>(`SELECT path, size, checksum, mode FROM files WHERE deleted_at IS NULL ORDER BY path`);
  const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
  t.same(
    live,
    [
      { path: '/dd/f.bin', size: 70_000, checksum: sha(Buffer.alloc(70_000, 1)), mode: 0o644 },
      { path: '/dd/renamed.txt', size: 14, checksum: sha('written before'), mode: 0o644 },
      { path: '/during.txt', size: 35, checksum: sha('written while the database was down'), mode: 0o600 },
    ],
    'metadata holds every change made while the database was down',
  );
  const folders = await grid.store.query<{ path: string }>(`SELECT path FROM folders ORDER BY path`);
  t.same(folders.map((f) => f.path), ['/', '/dd'], 'the folder too');
  const journal = path.join(grid.dir, 'data', 'journal');
  const left = await fs.readdir(journal).then(async (names) => (await Promise.all(names.filter((n) => n.endsWith('.jsonl')).map((n) => fs.readFile(path.join(journal, n), 'utf8')))).join(''));
  t.equal(left, '', 'journal empty after replay');
  await fs.writeFile(P('after.txt'), 'after');
  const after = await grid.store.query(`SELECT 1 FROM files WHERE path = '/after.txt' AND deleted_at IS NULL`);
  t.equal(after.length, 1, 'writes go straight to the database again');
});

t.test('database down when the mount starts: it comes up from the nodes and catches up later', async (t) => {
  const pgDir = await scratchDir('pgdown-start-');
  const { url } = await ensureEmbedded(pgDir);
  const grid = await makeGrid(t, { url });
  t.teardown(() => stopEmbedded(pgDir).catch(() => undefined));
  t.ok(await stopEmbedded(pgDir), 'PostgreSQL stopped before mounting');
  const m = await grid.mount();
  t.match(m.output(), /unreachable at mount time/, 'the mount says so');
  await fs.mkdir(path.join(m.mountpoint, 'early'));
  await fs.writeFile(path.join(m.mountpoint, 'early', 'f.txt'), 'before the database');
  t.equal(await fs.readFile(path.join(m.mountpoint, 'early', 'f.txt'), 'utf8'), 'before the database', 'served from the nodes');
  await ensureEmbedded(pgDir);
  let ok = false;
  for (let i = 0; i < 150 && !ok; i++) {
    const r = await grid.store.query<{ size: number }>(`SELECT size FROM files WHERE path = '/early/f.txt' AND deleted_at IS NULL`).catch(() => []);
    ok = r.length === 1 && r[0]!.size === 19;
    if (!ok) await sleep(100);
  }
  t.ok(ok, 'registered once the database answered');
  // the mount leaves degraded mode once its replay and reconcile are done
  let later = false;
  for (let i = 0; i < 100 && !later; i++) {
    await fs.writeFile(path.join(m.mountpoint, 'later.txt'), `x${i}`);
    later = (await grid.store.query(`SELECT 1 FROM files WHERE path = '/later.txt' AND size = $1 AND deleted_at IS NULL`, [`x${i}`.length])).length === 1;
    if (!later) await sleep(100);
  }
  t.ok(later, 'writes go straight to the database again');
});
