/** mkdir(path, mode) */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const mkdir = defineOp({ name: 'mkdir', reply: 'none', run: (fs, path: string, mode: number, uid?: number, gid?: number) => fs.mkdir(vp(path), mode, uid, gid) });
