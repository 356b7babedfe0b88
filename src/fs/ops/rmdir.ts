/** rmdir(path): ENOTEMPTY when metadata or any node still has children. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const rmdir = defineOp({ name: 'rmdir', reply: 'none', run: (fs, path: string) => fs.rmdir(vp(path)) });
