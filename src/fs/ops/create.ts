/** create(path, mode): a new file on the node the placement policy picks. */
import { defineOp } from './types.js';
import { vp } from './path.js';

export const create = defineOp({ name: 'create', reply: 'value', run: (fs, path: string, mode: number, uid?: number, gid?: number) => fs.create(vp(path), mode, uid, gid) });
