/**
 * A full node: a write that hits ENOSPC moves the file to the next node and
 * goes on there; the application never sees the error.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sh } from '../helpers/mount.js';

t.test('ENOSPC on the chosen node moves the file to the next one', async (t) => {
  const grid = await makeGrid(t, { nodes: 2, config: { mount: { placement: 'ff' } } });
  // n1 becomes a 1 MiB tmpfs
  const tm = await sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', grid.nodes.n1!]);
  if (tm.code !== 0) {
    t.comment(`cannot mount a tmpfs (${tm.stderr.trim()}): skipped`);
    return;
  }
  t.teardown(() => sh('umount', ['-l', grid.nodes.n1!]));
  const m = await grid.mount();
  const data = Buffer.alloc(3 * 2 ** 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  await fs.writeFile(path.join(m.mountpoint, 'big.bin'), data);
  t.same(await fs.readFile(path.join(m.mountpoint, 'big.bin')), data, 'the whole file reads back');
  t.equal(await fs.stat(path.join(grid.nodes.n1!, 'big.bin')).then(() => 'left', () => 'gone'), 'gone', 'nothing left on the full node');
  t.same(await fs.readFile(path.join(grid.nodes.n2!, 'big.bin')), data, 'the bytes are on n2');
  const rows = await grid.store.query<{ size: number; checksum: string; node: string }>(
    `SELECT f.size, f.checksum, n.name AS node FROM files f JOIN replicas r ON r.file_id = f.id JOIN nodes n ON n.id = r.node_id WHERE f.path = '/big.bin' AND f.deleted_at IS NULL`,
  );
  t.same(rows, [{ size: data.length, checksum: createHash('sha256').update(data).digest('hex'), node: 'n2' }], 'registered on n2 with the right checksum');
  await fs.writeFile(path.join(m.mountpoint, 'small.txt'), 'still fits');
  t.equal(await fs.readFile(path.join(m.mountpoint, 'small.txt'), 'utf8'), 'still fits', 'small files still work');
});
