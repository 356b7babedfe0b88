/**
 * The replicator's side of the grid-wide path locks (sql/0004): it only
 * ever tries them, and leaves a path a mount is changing for later.
 */
import { PathLockUnavailable, type LockedDb } from '../meta/store.js';
import type { ReplicatorContext } from './context.js';

/**
 * Run `fn` holding the grid-wide locks of `paths` (MetaStore.withPathLocks,
 * sql/0004), only if they are free now: a mount changing one of these paths
 * has precedence, and the replicator comes back to it later. The locks are
 * shared (replicators of different nodes placing copies of one file do not
 * wait for each other) unless `exclusive` (walk: it must not register a
 * path while its own node's replicator changes it). `fn` gets the
 * locking connection for its statements (never another pool connection: a
 * pool shared by several locked sections must not starve). Returns null
 * when a lock was taken.
 */
export async function tryLocked<T>(
  ctx: ReplicatorContext,
  paths: readonly (string | null | undefined)[],
  fn: (db: LockedDb) => Promise<T>,
  opts: { exclusive?: boolean } = {},
): Promise<{ value: T } | null> {
  try {
    return { value: await ctx.store.withPathLocks(paths.filter((p): p is string => typeof p === 'string'), { mode: 'try', shared: !opts.exclusive }, fn) };
  } catch (err) {
    if (err instanceof PathLockUnavailable) {
      if (err.busy) return null;
      throw err.cause ?? err;
    }
    throw err;
  }
}

