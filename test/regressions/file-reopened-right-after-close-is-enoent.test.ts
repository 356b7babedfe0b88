/**
 * Found by the DB-restart fault test: `: > f; echo x >> f` failed with
 * ENOENT now and then. close(2) returns after FLUSH; the kernel sends
 * RELEASE afterwards, and the mount took the writer out of its handle table
 * before registering and publishing the file. An open(2) or stat(2) arriving
 * in between found neither the writer nor the file. They now wait for the
 * writer being closed.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeGrid } from '../helpers/mount.js';

t.test('open, stat and append right after a close, many times', async (t) => {
  const g = await makeGrid(t, { nodes: 2 });
  const m = await g.mount();
  const failures: string[] = [];
  for (let i = 0; i < 150; i++) {
    const p = path.join(m.mountpoint, `f${i}`);
    try {
      await fs.writeFile(p, i % 2 ? '' : 'first\n'); // an empty file is registered at RELEASE, not at FLUSH
      await fs.appendFile(p, 'x\n');
      const st = await fs.stat(p);
      const want = (i % 2 ? 0 : 6) + 2;
      if (st.size !== want) failures.push(`f${i}: size ${st.size}, want ${want}`);
    } catch (err) {
      failures.push(`f${i}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  t.same(failures, [], 'every open after a close found the file');
  for (let i = 0; i < 150; i += 37) {
    t.equal(await fs.readFile(path.join(m.mountpoint, `f${i}`), 'utf8'), (i % 2 ? '' : 'first\n') + 'x\n', `f${i} reads back`);
  }
});
