/** chown(path, uid, gid): -1 keeps a value. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const chown = defineOp({ name: 'chown', reply: 'none', run: (fs, path: string, uid: number, gid: number) => fs.chown(vp(path), uid, gid) });
