/**
 * One FUSE operation: unpack fuse-native's arguments, call the filesystem
 * layer, return the result. `reply` says how the adapter answers the kernel:
 * - 'none': success carries no value
 * - 'value': success carries one value (stat, fd, link target, statfs)
 * - 'bytes': read/write, success is a byte count
 * - 'names': readdir
 */
import type { GridFs } from '../grid-fs.js';

export interface FuseOp {
  name: string;
  reply: 'none' | 'value' | 'bytes' | 'names';
  run(fs: GridFs, ...args: any[]): Promise<unknown>;
}

export function defineOp<A extends unknown[]>(op: { name: string; reply: FuseOp['reply']; run(fs: GridFs, ...args: A): Promise<unknown> }): FuseOp {
  return op as FuseOp;
}
