/** link(from, to): hard links are not supported — EPERM (documented in the README). */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const link = defineOp({ name: 'link', reply: 'none', run: (fs, from: string, to: string) => fs.link(vp(from), vp(to)) });
