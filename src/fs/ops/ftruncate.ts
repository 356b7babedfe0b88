/** ftruncate(path, fd, size) */
import { defineOp } from './types.js';

export const ftruncate = defineOp({ name: 'ftruncate', reply: 'none', run: (fs, _path: string, fd: number, size: number) => fs.ftruncate(fd, size) });
