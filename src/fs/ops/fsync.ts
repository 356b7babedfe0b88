/** fsync(path, datasync, fd): data to stable storage on the node, then registered. */
import { defineOp } from './types.js';

export const fsync = defineOp({ name: 'fsync', reply: 'none', run: (fs, _path: string, _datasync: number, fd: number) => fs.fsync(fd) });
