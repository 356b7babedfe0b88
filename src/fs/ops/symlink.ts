/** symlink(target, path): fuse-native passes the link's target first. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const symlink = defineOp({ name: 'symlink', reply: 'none', run: (fs, target: string, path: string, uid?: number, gid?: number) => fs.symlink(target, vp(path), uid, gid) });
