/** getattr(path): attributes of an entry (also serves fgetattr: fuse-native routes it here). */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const getattr = defineOp({ name: 'getattr', reply: 'value', run: (fs, path: string) => fs.getattr(vp(path)) });
