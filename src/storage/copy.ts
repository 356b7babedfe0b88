/**
 * Atomic, verified copy onto a node folder: the bytes go to a temp file in
 * the node root's reserved folder `.ggfs-tmp/` (same file system, so the
 * rename into place is atomic; outside every user folder, so a folder
 * renamed or removed through the mount meanwhile neither carries the temp
 * along nor is kept from being removed by it), are hashed while they stream
 * (off the JS thread, see hash.ts), checked against the expected sha256 and
 * size, fsynced with their mode, owner and times, and only then renamed to
 * the destination; the folder is fsynced after the rename. A failed or killed
 * copy never leaves a partial file at the destination: at worst a temp file,
 * whose name is fixed per destination so the next copy overwrites it, and
 * which walks ignore and the next replicate run removes.
 *
 * The two steps are also exported separately (copyToTemp, placeTemp) so the
 * replicator can check metadata between them and undo a placement exactly:
 * placeTemp creates missing parent folders itself and reports which ones (with
 * their inode), so only folders it made are ever removed again.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { HashPool, HashResult } from './hash.js';
import { StorageError } from './hash.js';

/** Prefix of every name the replicator creates for its own use in a node folder. */
export const RESERVED_PREFIX = '.ggfs-';
/** Folder (under a node root) where scrub moves corrupt replicas. */
export const QUARANTINE_DIR = '.ggfs-quarantine';

/** Folder under a node root for temp files (the replicator's copies, the mount's writes). */
export const TEMP_DIR = '.ggfs-tmp';
/** Name prefix of the replicator's temp files in TEMP_DIR (the mount uses other names there). */
export const REPLICA_TEMP_PREFIX = 'replica-';

/**
 * The temp file used while copying to `dest` under node root `root`:
 * `<root>/.ggfs-tmp/replica-<hash of dest>`, fixed per destination.
 */
export function tempPathFor(root: string, dest: string): string {
  return path.join(root, TEMP_DIR, `${REPLICA_TEMP_PREFIX}${createHash('sha256').update(path.relative(root, dest)).digest('hex').slice(0, 24)}`);
}

/** Names walks, watchers and fsck must skip (temp files, quarantine). */
export function isReservedName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

export interface CopyRequest {
  source: string;
  /** the node root that holds `dest` (the temp file goes to its TEMP_DIR) */
  root: string;
  dest: string;
  checksum: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  atimeUs: number;
  /** pace in bytes/s (0 = as fast as possible) */
  bytesPerSec?: number;
  /**
   * fsync the folder after the rename (default true). A caller batching many
   * copies passes false and fsyncs each folder once before it relies on them.
   */
  syncDir?: boolean;
}

/** The source's bytes did not match the expected checksum or size (try another source). */
export class SourceMismatchError extends StorageError {
  readonly got: HashResult;
  constructor(message: string, got: HashResult) {
    super(message, 'EBADMSG');
    this.got = got;
  }
}

/** fsync a folder so a rename inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // some file systems (and NFS servers) refuse fsync on a directory
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'EBADF') throw err;
  } finally {
    await fh.close();
  }
}

/** A verified temp file, ready to be placed. */
export interface TempCopy {
  temp: string;
  got: HashResult;
  /** identity of the copied bytes (follows them through renames) */
  dev: number;
  ino: number;
}

/**
 * Copy `req.source` to the temp file for `req.dest`, verified and fsynced.
 * Rejects with SourceMismatchError when the source's bytes are not the
 * expected ones, or StorageError/Node errors for I/O failures; the temp file
 * is then removed. The destination is not touched.
 */
export async function copyToTemp(pool: HashPool, req: CopyRequest): Promise<TempCopy> {
  const temp = tempPathFor(req.root, req.dest);
  await mkdir(path.dirname(temp), { recursive: true });
  try {
    const got = await pool.copy({
      source: req.source,
      target: temp,
      mode: req.mode,
      uid: process.getuid?.() === 0 ? req.uid : null,
      gid: process.getuid?.() === 0 ? req.gid : null,
      atimeUs: req.atimeUs,
      mtimeUs: req.mtimeUs,
      bytesPerSec: req.bytesPerSec ?? 0,
    });
    if (got.checksum !== req.checksum || got.size !== req.size) {
      throw new SourceMismatchError(`${req.source}: content differs from metadata (size ${got.size} vs ${req.size}, sha256 ${got.checksum.slice(0, 12)}… vs ${req.checksum.slice(0, 12)}…)`, got);
    }
    const st = await lstat(temp);
    return { temp, got, dev: st.dev, ino: st.ino };
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** A folder placeTemp created, with its identity (removed again only if it is still that folder). */
export interface CreatedDir {
  path: string;
  dev: number;
  ino: number;
}

/**
 * Rename a verified temp file to `dest` (under node root `root`), creating the
 * missing parent folders one by one and returning those it created, deepest
 * last. On failure the temp file is removed and the folders it created are
 * removed again (when still empty).
 */
export async function placeTemp(root: string, temp: string, dest: string): Promise<CreatedDir[]> {
  const created: CreatedDir[] = [];
  try {
    const missing: string[] = [];
    for (let d = path.dirname(dest); d.startsWith(root + path.sep) && d !== root; d = path.dirname(d)) {
      const st = await lstat(d).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
      if (st) break;
      missing.unshift(d);
    }
    for (const d of missing) {
      try {
        await mkdir(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // made meanwhile by someone else: not ours
        throw err;
      }
      const st = await lstat(d);
      created.push({ path: d, dev: st.dev, ino: st.ino });
    }
    await rename(temp, dest);
    return created;
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    await removeCreatedDirs(created);
    throw err;
  }
}

/**
 * Remove folders placeTemp created, deepest first, each only while it is
 * still the same folder (dev/ino) and empty; stops at the first one that is
 * not. Never touches a folder somebody else made. Best effort.
 */
export async function removeCreatedDirs(created: readonly CreatedDir[]): Promise<void> {
  for (const d of [...created].reverse()) {
    const st = await lstat(d.path).catch(() => null);
    if (!st || st.dev !== d.dev || st.ino !== d.ino) continue; // gone or moved (a rename took it): not here to remove
    try {
      await rmdir(d.path);
    } catch {
      return; // not empty: what is above it stays too
    }
  }
}

/**
 * Copy `req.source` to `req.dest` atomically and verified (copyToTemp, then
 * placeTemp). Rejects with SourceMismatchError when the source's bytes are
 * not the expected ones, or StorageError/Node errors for I/O failures; the
 * destination is then untouched and the temp file removed.
 */
export async function copyVerified(pool: HashPool, req: CopyRequest): Promise<HashResult> {
  const copied = await copyToTemp(pool, req);
  await placeTemp(req.root, copied.temp, req.dest);
  if (req.syncDir !== false) await fsyncDir(path.dirname(req.dest));
  return copied.got;
}

/**
 * Remove the replicator's temp files left in `<root>/.ggfs-tmp/` by a run
 * that died. Only for a caller that holds the node's replicator lock (no copy
 * to this node is running then); the mount's temp files there are left alone.
 * Returns how many were removed.
 */
export async function removeStaleReplicaTemps(root: string): Promise<number> {
  const dir = path.join(root, TEMP_DIR);
  const names = await readdir(dir).catch(() => [] as string[]);
  let removed = 0;
  for (const n of names) {
    if (!n.startsWith(REPLICA_TEMP_PREFIX)) continue;
    await unlink(path.join(dir, n)).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}
