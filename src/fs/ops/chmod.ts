/** chmod(path, mode) */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const chmod = defineOp({ name: 'chmod', reply: 'none', run: (fs, path: string, mode: number) => fs.chmod(vp(path), mode) });
