/** open(path, flags): a handle; read-only opens never change metadata. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const open = defineOp({ name: 'open', reply: 'value', run: (fs, path: string, flags: number) => fs.open(vp(path), flags) });
