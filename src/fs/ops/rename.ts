/** rename(from, to): files and whole folders, with POSIX overwrite rules. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const rename = defineOp({ name: 'rename', reply: 'none', run: (fs, from: string, to: string) => fs.rename(vp(from), vp(to)) });
