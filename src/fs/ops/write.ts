/** write(path, fd, buf, len, pos): bytes to the handle's node; the checksum follows sequential writes. */
import { defineOp } from './types.js';

export const write = defineOp({
  name: 'write',
  reply: 'bytes',
  // copy: the kernel's buffer is gone once we answer, a timed-out write may still run
  run: (fs, _path: string, fd: number, buf: Buffer, len: number, pos: number) => fs.write(fd, Buffer.from(buf.subarray(0, len)), pos),
});
