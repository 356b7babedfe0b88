/** flush(path, fd): close(2) of one descriptor; a written file is registered here. */
import { defineOp } from './types.js';

export const flush = defineOp({ name: 'flush', reply: 'none', run: (fs, _path: string, fd: number) => fs.flush(fd) });
