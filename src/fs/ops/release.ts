/** release(path, fd): the last close of a handle. */
import { defineOp } from './types.js';

export const release = defineOp({ name: 'release', reply: 'none', run: (fs, _path: string, fd: number) => fs.release(fd) });
