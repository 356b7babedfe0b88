/** utimens(path, atime, mtime): times in ms since the epoch. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const utimens = defineOp({ name: 'utimens', reply: 'none', run: (fs, path: string, atime: number, mtime: number) => fs.utimens(vp(path), atime, mtime) });
