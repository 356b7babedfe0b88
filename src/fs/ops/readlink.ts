/** readlink(path) */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const readlink = defineOp({ name: 'readlink', reply: 'value', run: (fs, path: string) => fs.readlink(vp(path)) });
