/** statfs(path): space summed over the active nodes. */
import { defineOp } from './types.js';

export const statfs = defineOp({ name: 'statfs', reply: 'value', run: (fs) => fs.statfs() });
