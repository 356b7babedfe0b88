/**
 * FsyncPool: fsyncs on worker threads resolve for open files, reject with
 * the errno for a bad descriptor, and keep working after close().
 */
import t from 'tap';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { FsyncPool } from '../../src/backup/fsync-pool.js';

t.test('fsync on worker threads', async (t) => {
  const dir = await scratchDir('fsync-');
  const pool = new FsyncPool(2);
  const handles = await Promise.all(Array.from({ length: 6 }, (_, i) => open(path.join(dir, `f${i}`), 'w')));
  try {
    for (const fh of handles) await fh.write(Buffer.alloc(4096, 1));
    await Promise.all(handles.map((fh) => pool.fsync(fh.fd)));
    t.pass('six fsyncs through two workers');
    await t.rejects(pool.fsync(987654), { code: 'EBADF' }, 'a bad descriptor rejects with its errno');
    await pool.close();
    await pool.fsync(handles[0]!.fd);
    t.pass('usable again after close');
  } finally {
    await Promise.all(handles.map((fh) => fh.close()));
    await pool.close();
  }
});
