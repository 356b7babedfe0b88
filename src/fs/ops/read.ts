/** read(path, fd, buf, len, pos): bytes from a healthy replica (fail-over inside). */
import { defineOp } from './types.js';

export const read = defineOp({
  name: 'read',
  reply: 'bytes',
  run: async (fs, _path: string, fd: number, buf: Buffer, len: number, pos: number) => {
    const data = await fs.read(fd, len, pos);
    // copy into the kernel's buffer only now: a storage call that timed out may still complete later
    data.copy(buf, 0, 0, data.length);
    return data.length;
  },
});
