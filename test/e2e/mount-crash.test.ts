/**
 * kill -9 of the mount process: the kernel is left with a dead mount
 * (ENOTCONN); mounting again detects and clears it, and no file is
 * registered with a wrong size or checksum.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sleep } from '../helpers/mount.js';

t.test('kill -9 of the mount, then mount again', async (t) => {
  const grid = await makeGrid(t);
  const m = await grid.mount();
  for (let i = 0; i < 20; i++) await fs.writeFile(path.join(m.mountpoint, `f${i}`), Buffer.alloc(1000 + i * 997, i));
  // a file open for writing (never closed) at the moment of the crash
  const fh = await fs.open(path.join(m.mountpoint, 'open.bin'), 'w');
  await fh.write(Buffer.alloc(50_000, 9));
  m.child.kill('SIGKILL');
  await new Promise((r) => m.child.once('exit', r));
  await fh.close().catch(() => undefined);
  const err = await fs.stat(m.mountpoint).catch((e: NodeJS.ErrnoException) => e.code);
  t.equal(err, 'ENOTCONN', 'the dead mount answers ENOTCONN');

  const again = await grid.mount(m.mountpoint);
  t.match(again.output(), /stale mount/, 'the stale mount was detected and cleared');
  await sleep(100);
  const names = (await fs.readdir(again.mountpoint)).filter((n) => n.startsWith('f')).sort();
  t.equal(names.length, 20, 'all closed files are there');
  for (let i = 0; i < 20; i++) {
    t.same(await fs.readFile(path.join(again.mountpoint, `f${i}`)), Buffer.alloc(1000 + i * 997, i), `f${i} intact`);
  }
  const rows = await grid.store.query<{ path: string; size: number; checksum: string; node: string; rpath: string }>(
    `SELECT f.path, f.size, f.checksum, n.name AS node, r.path AS rpath FROM files f JOIN replicas r ON r.file_id = f.id AND r.version = f.version
       JOIN nodes n ON n.id = r.node_id WHERE f.deleted_at IS NULL`,
  );
  let bad = 0;
  for (const r of rows) {
    const bytes = await fs.readFile(path.join(grid.nodes[r.node]!, r.rpath));
    if (bytes.length !== r.size || createHash('sha256').update(bytes).digest('hex') !== r.checksum) bad++;
  }
  t.equal(bad, 0, `no file registered with a wrong size or checksum (${rows.length} checked)`);
  await fs.writeFile(path.join(again.mountpoint, 'after.txt'), 'ok');
  t.equal(await fs.readFile(path.join(again.mountpoint, 'after.txt'), 'utf8'), 'ok', 'the new mount works');
});
