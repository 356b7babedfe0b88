/**
 * Found by the soak and DB-restart fault tests under load (npm test): a
 * file written in one go ended up registered with a part of its bytes (or
 * none: size 0) while its node held all of them, so reads through the mount
 * failed (EIO: no replica of the registered size) and the replicators
 * could not copy it. Every close(2) of a descriptor sends FUSE a FLUSH,
 * also the close-on-exec in a child process the writer forks mid-write
 * (the soak spawns replicator runs). That FLUSH committed the part written
 * so far; writes arriving meanwhile went into the temp being published
 * (after its size and checksum were taken), and the last close then found
 * the temp gone and registered nothing. Commits (and truncates) of a writer
 * now run one at a time, writes wait for them, and a write after a commit
 * starts a new version.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeGrid } from '../helpers/mount.js';

t.test('a close of a second descriptor while the first keeps writing: the last close registers every byte', async (t) => {
  const g = await makeGrid(t, { nodes: 2 });
  const m = await g.mount();
  const want = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) {
    const vpath = `/f${i}.bin`;
    const p = path.join(m.mountpoint, vpath);
    const data = randomBytes(128 * 1024 + i * 7919);
    want.set(vpath, data);
    const writer = await fs.open(p, 'w');
    const other = await fs.open(p, 'r+'); // shares the writer; its close is a FLUSH, as a forked child's close-on-exec
    const closing = other.close(); // commits the (so far empty) file while the writes below arrive
    await writer.write(data, 0, data.length, 0); // one write(2): 128 KiB FUSE writes, all while that commit runs
    await closing;
    await writer.close();
  }
  for (const [vpath, data] of want) {
    const rows = await g.store.query<{ size: string; checksum: string }>('SELECT size, checksum FROM files WHERE path = $1 AND deleted_at IS NULL', [vpath]);
    t.equal(Number(rows[0]?.size), data.length, `${vpath}: registered with all its bytes`);
    t.equal(rows[0]?.checksum, createHash('sha256').update(data).digest('hex'), `${vpath}: registered checksum is its bytes'`);
    const back = await fs.readFile(path.join(m.mountpoint, vpath)).catch((err: NodeJS.ErrnoException) => Buffer.from(`unreadable: ${err.code}`));
    t.ok(back.equals(data), `${vpath} reads back whole through the mount`);
  }
});
