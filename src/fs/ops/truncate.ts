/** truncate(path, size) */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const truncate = defineOp({ name: 'truncate', reply: 'none', run: (fs, path: string, size: number) => fs.truncate(vp(path), size) });
