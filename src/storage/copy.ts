/**
 * Atomic, verified copy onto a node folder: the bytes go to a temp file next
 * to the destination (same folder, so the rename is atomic on that file
 * system), are hashed while they stream (off the JS thread, see hash.ts),
 * checked against the expected sha256 and size, fsynced with their mode,
 * owner and times, and only then renamed over the destination; the folder
 * is fsynced after the rename. A failed or killed copy never leaves a partial
 * file at the destination: at worst a temp file, whose name is fixed per
 * destination so the next copy overwrites it, and which walks ignore.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { HashPool, HashResult } from './hash.js';
import { StorageError } from './hash.js';

/** Prefix of every name the replicator creates for its own use in a node folder. */
export const RESERVED_PREFIX = '.ggfs-';
/** Folder (under a node root) where scrub moves corrupt replicas. */
export const QUARANTINE_DIR = '.ggfs-quarantine';

/** The temp file used while copying to `dest`: fixed per destination, short whatever the name's length. */
export function tempPathFor(dest: string): string {
  const base = path.basename(dest);
  return path.join(path.dirname(dest), `${RESERVED_PREFIX}part-${createHash('sha256').update(base).digest('hex').slice(0, 20)}`);
}

/** Names walks, watchers and fsck must skip (temp files, quarantine). */
export function isReservedName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

export interface CopyRequest {
  source: string;
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

/**
 * Copy `req.source` to `req.dest` atomically and verified. Rejects with
 * SourceMismatchError when the source's bytes are not the expected ones, or
 * StorageError/Node errors for I/O failures; the destination is then
 * untouched and the temp file removed.
 */
export async function copyVerified(pool: HashPool, req: CopyRequest): Promise<HashResult> {
  const dir = path.dirname(req.dest);
  await mkdir(dir, { recursive: true });
  const temp = tempPathFor(req.dest);
  let got: HashResult;
  try {
    got = await pool.copy({
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
    await rename(temp, req.dest);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  if (req.syncDir !== false) await fsyncDir(dir);
  return got;
}
