/**
 * The only module that touches fuse-native. It wraps the binding once:
 * handlers are the async operations of ops/ (return a value or throw); this
 * adapter turns them into fuse-native's callbacks, maps errors through
 * toErrno, logs each operation in one place, and mounts/unmounts.
 *
 * fuse-native 2.2.6 facts this relies on:
 * - its options are tested for truthiness (attrTimeout: 0 is dropped) and it
 *   has no switch for big_writes: extra options ride on the fsname string,
 *   which it joins into the -o list unchanged;
 * - every operation has its own time-out (default 15 s), set from
 *   mount.opTimeoutSec, longer than storage.timeoutMs so a read can fail over;
 * - read/write answer with a byte count (or -errno) as the first argument;
 * - fgetattr is routed to getattr; the prebuilt binary passes atime twice to
 *   utimens (mtime lost), drops single-time utimensat calls and does not tell
 *   who the caller is: scripts/build-fuse-native.mjs rebuilds it with those
 *   fixed, and this adapter uses the extra arguments when it is there.
 */
import { createRequire } from 'node:module';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import fsSync from 'node:fs';
import path from 'node:path';
import type { Logger } from '../util/log.js';
import { toErrno } from './errors.js';
import type { Attr, AttrSink, GridFs } from './grid-fs.js';
import { OPS } from './ops/index.js';

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
type FuseCtor = new (mnt: string, ops: Record<string, (...args: any[]) => void>, opts: Record<string, unknown>) => FuseInstance;

const require = createRequire(import.meta.url);

export interface MountOptions {
  mountpoint: string;
  allowOther: boolean;
  attrTimeoutSec: number;
  opTimeoutSec: number;
  /** entries of the binding's attribute cache (0: off; see nativeAttrCache) */
  attrCacheEntries?: number;
  /** extra -o options passed to FUSE as they are */
  extra?: string[];
  debug?: boolean;
}

export interface Mounted {
  mountpoint: string;
  /** the -o option string given to FUSE */
  options: string;
  unmount(): Promise<void>;
  /** resolves when the mount disappears (fusermount -u from outside, or unmount()) */
  gone: Promise<void>;
}

/** True when node_modules/fuse-native carries the binding built by scripts/build-fuse-native.mjs. */
export function patchedBinding(): boolean {
  try {
    const dir = path.dirname(require.resolve('fuse-native/package.json'));
    return fsSync.existsSync(path.join(dir, 'build', 'Release', 'geogridfs-patches')) && fsSync.existsSync(path.join(dir, 'build', 'Release', 'fuse.node'));
  } catch {
    return false;
  }
}

/** How long an entry of the binding's attribute cache lives at most (the metadata cache's positive lifetime). */
const ATTR_CACHE_TTL_MS = 30_000;

/**
 * The rebuilt binding's attribute cache (patch 4 of
 * scripts/build-fuse-native.mjs) as GridFs's AttrSink, or null when the
 * binary has none (the prebuilt one). Entries go in in fuse-native's stat
 * layout (what its getStatArray makes).
 */
export function nativeAttrCache(maxEntries: number): (AttrSink & { stats(): { hits: number; misses: number; entries: number }; close(): void }) | null {
  let b: Record<string, (...a: unknown[]) => void>;
  try {
    const pkg = require.resolve('fuse-native/package.json');
    b = createRequire(pkg)('node-gyp-build')(path.dirname(pkg)) as typeof b;
  } catch {
    return null;
  }
  if (typeof b.geogridfs_statcache_put !== 'function') return null;
  const put = b.geogridfs_statcache_put;
  const drop = b.geogridfs_statcache_invalidate!;
  const dropTree = b.geogridfs_statcache_invalidate_subtree!;
  const clear = b.geogridfs_statcache_clear!;
  b.geogridfs_statcache_configure!(maxEntries, ATTR_CACHE_TTL_MS);
  const ints = new Uint32Array(18);
  const two = (i: number, n: number) => {
    ints[i] = n % 4294967296;
    ints[i + 1] = (n - ints[i]!) / 4294967296;
  };
  const counts = new Float64Array(3);
  return {
    put(vpath: string, a: Attr) {
      ints.fill(0);
      ints[0] = a.mode;
      ints[1] = a.uid;
      ints[2] = a.gid;
      two(3, a.size);
      ints[6] = a.nlink;
      ints[7] = a.ino;
      ints[9] = a.blksize;
      two(10, a.blocks);
      two(12, a.atime);
      two(14, a.mtime);
      two(16, a.ctime);
      put(vpath, ints);
    },
    invalidate: (vpath: string) => drop(vpath),
    invalidateSubtree: (folder: string) => dropTree(folder),
    clear: () => clear(),
    stats() {
      b.geogridfs_statcache_stats!(counts);
      return { hits: counts[0]!, misses: counts[1]!, entries: counts[2]! };
    },
    close: () => b.geogridfs_statcache_configure!(0, 0),
  };
}

/** fuse-native handlers for the op table. */
export function fuseHandlers(fs: GridFs, log: Logger): Record<string, (...args: any[]) => void> {
  const handlers: Record<string, (...args: any[]) => void> = {};
  const debug = log.isLevelEnabled('debug');
  for (const op of OPS) {
    handlers[op.name] = (...args: any[]) => {
      const cb = args.pop() as (...r: unknown[]) => void;
      const started = debug ? performance.now() : 0;
      // async wrapper: a synchronous throw (a bad path) becomes an errno, never a crash
      (async () => op.run(fs, ...args))().then(
        (result) => {
          if (debug) log.debug({ op: op.name, args: args.filter((a) => !Buffer.isBuffer(a)), ms: +(performance.now() - started).toFixed(2) }, 'op');
          switch (op.reply) {
            case 'none':
              return cb(0);
            case 'bytes':
              return cb(result as number);
            case 'names':
              return cb(0, result);
            case 'value':
              return cb(0, result);
          }
        },
        (err: unknown) => {
          const errno = toErrno(err, log, { op: op.name, args: args.filter((a) => !Buffer.isBuffer(a)) });
          if (debug) log.debug({ op: op.name, args: args.filter((a) => !Buffer.isBuffer(a)), errno, ms: +(performance.now() - started).toFixed(2) }, 'op failed');
          cb(-errno);
        },
      );
    };
  }
  return handlers;
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) }));
  });
}

/** True when the mountpoint is listed in /proc/mounts. */
export async function isMounted(mountpoint: string): Promise<boolean> {
  const text = await fsp.readFile('/proc/mounts', 'utf8').catch(() => '');
  const want = path.resolve(mountpoint).replace(/ /g, '\\040');
  return text.split('\n').some((l) => l.split(' ')[1] === want);
}

/**
 * Detect a stale mount (left by a crashed mount process: ENOTCONN) and
 * clear it with `fusermount -uz`. Returns true when one was cleared;
 * throws when a live file system is mounted there.
 */
export async function clearStaleMount(mountpoint: string, log: Logger): Promise<boolean> {
  const mnt = path.resolve(mountpoint);
  const st = await fsp.stat(mnt).then(
    () => null,
    (err: NodeJS.ErrnoException) => err.code ?? 'EIO',
  );
  if (st === 'ENOTCONN' || st === 'ECONNABORTED' || (st === null && (await isMounted(mnt)) && (await fsp.readdir(mnt).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN')))) {
    log.warn({ mountpoint: mnt }, 'stale mount found (its process died): clearing it');
    const r = await run('fusermount', ['-uz', mnt]);
    if (r.code !== 0) await run('umount', ['-l', mnt]);
    return true;
  }
  if (st === null && (await isMounted(mnt))) throw Object.assign(new Error(`${mnt} is already mounted (unmount it first: fusermount -u ${mnt})`), { code: 'EBUSY' });
  return false;
}

/** The -o option list: fuse-native's own options cannot express all of these (see the module comment). */
export function fuseOptionString(o: MountOptions): string {
  const t = String(o.attrTimeoutSec);
  return ['geogridfs', 'big_writes', 'use_ino', `attr_timeout=${t}`, `entry_timeout=${t}`, 'negative_timeout=0', ...(o.extra ?? [])].join(',');
}

/** Mount `fs` at the mountpoint (created if missing; a stale mount is cleared first). */
export async function mountFuse(fs: GridFs, o: MountOptions, log: Logger): Promise<Mounted> {
  const Fuse = require('fuse-native') as FuseCtor;
  const mnt = path.resolve(o.mountpoint);
  await fsp.mkdir(mnt, { recursive: true }).catch(() => undefined);
  await clearStaleMount(mnt, log);
  const fsname = fuseOptionString(o);
  const fuse = new Fuse(mnt, fuseHandlers(fs, log), {
    fsname,
    subtype: 'geogridfs',
    allowOther: o.allowOther,
    defaultPermissions: true,
    timeout: o.opTimeoutSec * 1000,
    debug: o.debug ?? false,
  });
  const patched = patchedBinding();
  if (patched) {
    // the rebuilt binding passes the caller's uid/gid after the usual arguments
    const h = fuse as unknown as Record<string, unknown>;
    const ops = (fuse as unknown as { ops: Record<string, (...a: unknown[]) => void> }).ops;
    h._op_create = (signal: (...a: unknown[]) => void, p: string, mode: number, uid: number, gid: number) => ops.create!(p, mode, uid, gid, (err: number, fd: number) => signal(err, fd));
    h._op_mkdir = (signal: (...a: unknown[]) => void, p: string, mode: number, uid: number, gid: number) => ops.mkdir!(p, mode, uid, gid, (err: number) => signal(err));
    h._op_symlink = (signal: (...a: unknown[]) => void, target: string, p: string, uid: number, gid: number) => ops.symlink!(target, p, uid, gid, (err: number) => signal(err));
  } else {
    log.warn('fuse-native is the prebuilt binary: utimens loses mtime and new entries belong to the mount\'s user (run `npm run build:fuse`)');
  }
  const attrCache = o.attrCacheEntries ? nativeAttrCache(o.attrCacheEntries) : null;
  if (o.attrCacheEntries && !attrCache) log.info('this fuse-native binary has no attribute cache: every getattr goes to JavaScript (run `npm run build:fuse`)');
  fs.setAttrSink(attrCache);
  const dropAttrCache = () => {
    fs.setAttrSink(null);
    attrCache?.close();
  };
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    dropAttrCache();
    throw err;
  }
  let unmounted = false;
  let resolveGone!: () => void;
  const gone = new Promise<void>((r) => (resolveGone = r));
  const poll = setInterval(() => {
    void isMounted(mnt).then((m) => {
      if (!m && !unmounted) {
        unmounted = true;
        clearInterval(poll);
        dropAttrCache();
        log.info({ mountpoint: mnt }, 'unmounted from outside (fusermount -u)');
        resolveGone();
      }
    });
  }, 1000);
  poll.unref();
  return {
    mountpoint: mnt,
    options: fsname,
    gone,
    unmount: async () => {
      clearInterval(poll);
      if (!unmounted) {
        unmounted = true;
        dropAttrCache();
        await new Promise<void>((resolve) =>
          fuse.unmount((err) => {
            if (err) log.warn({ err: err.message }, 'unmount reported an error');
            resolve();
          }),
        );
        // never leave a dead mount behind: retry, then detach it lazily
        for (let i = 0; i < 3 && (await isMounted(mnt)); i++) {
          const r = await run('fusermount', ['-uz', mnt]);
          if (r.code !== 0) {
            log.warn({ stderr: r.stderr.trim() }, 'fusermount -uz failed; trying umount -l');
            await run('umount', ['-l', mnt]);
          }
        }
      }
      resolveGone();
    },
  };
}
