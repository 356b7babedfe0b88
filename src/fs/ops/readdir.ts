/** readdir(path): names in a folder (metadata merged with the node folders). */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const readdir = defineOp({ name: 'readdir', reply: 'names', run: (fs, path: string) => fs.readdir(vp(path)) });
