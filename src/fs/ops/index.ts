/**
 * The table of FUSE operations, one file each. Operations not listed are not
 * registered, so the kernel answers ENOSYS (mknod, xattrs, access — the
 * mount uses default_permissions, so the kernel checks permissions itself).
 */
import type { FuseOp } from './types.js';
import { getattr } from './getattr.js';
import { readdir } from './readdir.js';
import { open } from './open.js';
import { create } from './create.js';
import { read } from './read.js';
import { write } from './write.js';
import { flush } from './flush.js';
import { fsync } from './fsync.js';
import { release } from './release.js';
import { truncate } from './truncate.js';
import { ftruncate } from './ftruncate.js';
import { unlink } from './unlink.js';
import { mkdir } from './mkdir.js';
import { rmdir } from './rmdir.js';
import { rename } from './rename.js';
import { symlink } from './symlink.js';
import { readlink } from './readlink.js';
import { chmod } from './chmod.js';
import { chown } from './chown.js';
import { utimens } from './utimens.js';
import { statfs } from './statfs.js';
import { link } from './link.js';

export const OPS: readonly FuseOp[] = [getattr, readdir, open, create, read, write, flush, fsync, release, truncate, ftruncate, unlink, mkdir, rmdir, rename, symlink, readlink, chmod, chown, utimens, statfs, link];
export type { FuseOp } from './types.js';
