/** unlink(path): removed from every reachable node; a tombstone in metadata. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const unlink = defineOp({ name: 'unlink', reply: 'none', run: (fs, path: string) => fs.unlink(vp(path)) });
