/** read(path, fd, buf, len, pos): bytes from a healthy replica (fail-over inside). */
import { defineOp } from './types.js';
import { ioBuffers } from './buffers.js';

export const read = defineOp({
  name: 'read',
  reply: 'bytes',
  run: async (fs, _path: string, fd: number, buf: Buffer, len: number, pos: number) => {
    // the storage call reads into the mount's own buffer, never into FUSE's (see buffers.ts);
    // on an error it is dropped: a timed-out call may still write into it
    const own = ioBuffers.take(len);
    const data = await fs.read(fd, len, pos, own);
    data.copy(buf, 0, 0, data.length);
    // a result elsewhere means an attempt failed over: `own` may still be written to later
    if (data.buffer === own.buffer) ioBuffers.give(own);
    return data.length;
  },
});
