/** write(path, fd, buf, len, pos): bytes to the handle's node; the checksum follows sequential writes. */
import { defineOp } from './types.js';
import { ioBuffers } from './buffers.js';

export const write = defineOp({
  name: 'write',
  reply: 'bytes',
  run: async (fs, _path: string, fd: number, buf: Buffer, len: number, pos: number) => {
    // copy into the mount's own buffer: FUSE's is freed once we answer, and a timed-out write may still run (see buffers.ts)
    const own = ioBuffers.take(len);
    buf.copy(own, 0, 0, len);
    // the write goes to the node after this answer (write-behind): the pool gets `own` back once no storage call uses it
    return fs.write(fd, own, pos, (b) => ioBuffers.give(b));
  },
});
