/** utimens(path, atime, mtime): times in ms since the epoch; 1 = now, 2 = leave unchanged (UTIME_NOW/UTIME_OMIT, rebuilt binding). */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const utimens = defineOp({ name: 'utimens', reply: 'none', run: (fs, path: string, atime: number, mtime: number) => {
    const t = (ms: number) => (ms === 1 ? Date.now() : ms === 2 ? undefined : ms);
    return fs.utimens(vp(path), t(atime), t(mtime));
  } });
