/**
 * Every storage call on a node folder goes through here: with a time-out,
 * under a per-node concurrency limit, and with suspect marking.
 *
 * Why: a node folder is an NFS mount; a hung server blocks a libuv thread per
 * call forever. The per-node queue (p-queue) keeps a slot busy until the
 * underlying call really returns, so one hung node holds at most
 * `perNodeConcurrency` threads and never starves the pool (sized by
 * UV_THREADPOOL_SIZE), while the caller gets ETIMEDOUT after `timeoutMs`
 * (time waiting in the queue counts). A node that timed out is suspect and
 * calls to it fail at once with EHOSTDOWN until `suspectMs` has passed.
 *
 * Buffers handed to a call are the caller's own: a call that timed out may
 * still complete later on its thread, so never pass memory you will free.
 */
import { constants as fsc, type Dirent, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { onNode } from '../util/vpath.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { NodeHealth } from './health.js';

export interface StorageNode {
  /** id in the nodes table (0 when the node is not registered) */
  id: number;
  name: string;
  /** the folder where this host sees the node */
  root: string;
  state: 'active' | 'readonly' | 'drain' | 'dead';
}

export interface NodeIoOptions {
  timeoutMs: number;
  perNodeConcurrency: number;
  suspectMs: number;
}

export interface SpaceInfo {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/** An error with a Node-style errno `code`, like the fs module's own. */
export function ioError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** Errors after which a node is treated as gone rather than the one file being bad. */
const NODE_GONE = new Set(['ETIMEDOUT', 'ENOTCONN', 'ESTALE', 'EHOSTDOWN', 'EHOSTUNREACH']);

export class NodeIo {
  readonly health: NodeHealth;
  private readonly queues = new Map<string, PQueue>();
  private readonly spaceCache = new Map<string, { at: number; space: SpaceInfo }>();

  constructor(
    readonly opts: NodeIoOptions,
    private readonly log: Logger = silentLogger,
  ) {
    this.health = new NodeHealth(opts.suspectMs, log);
  }

  private queue(node: StorageNode): PQueue {
    let q = this.queues.get(node.name);
    if (!q) {
      q = new PQueue({ concurrency: this.opts.perNodeConcurrency });
      this.queues.set(node.name, q);
    }
    return q;
  }

  /** Calls waiting or running per node (for status and tests). */
  load(): Record<string, { pending: number; size: number }> {
    return Object.fromEntries([...this.queues].map(([n, q]) => [n, { pending: q.pending, size: q.size }]));
  }

  /** True when the node may be used now (not suspect). */
  usable(node: StorageNode): boolean {
    return !this.health.isSuspect(node.name);
  }

  /**
   * Run `fn` on `node` with the time-out and concurrency limit. Rejects with
   * FsError EHOSTDOWN when the node is suspect, ETIMEDOUT on time-out (and
   * marks it suspect), or the call's own error. `onLate` receives a result
   * that arrived after the time-out (to close a late file handle).
   */
  call<T>(node: StorageNode, what: string, fn: () => Promise<T>, onLate?: (value: T) => void): Promise<T> {
    if (this.health.isSuspect(node.name)) return Promise.reject(ioError('EHOSTDOWN', `node ${node.name} is suspect (${what})`));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.health.markSuspect(node.name, `${what} timed out after ${this.opts.timeoutMs} ms`);
        reject(ioError('ETIMEDOUT', `node ${node.name}: ${what} timed out`));
      }, this.opts.timeoutMs);
      void this.queue(node).add(async () => {
        if (settled) return; // timed out while queued: do not start it
        try {
          const value = await fn();
          if (settled) {
            onLate?.(value);
            return;
          }
          settled = true;
          clearTimeout(timer);
          this.health.markHealthy(node.name);
          resolve(value);
        } catch (err) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const code = (err as NodeJS.ErrnoException).code;
          if (code && NODE_GONE.has(code)) this.health.markSuspect(node.name, `${what}: ${code}`);
          reject(err);
        }
      });
    });
  }

  /** Absolute path of a virtual path on a node (always inside its root). */
  where(node: StorageNode, vpath: string): string {
    return onNode(node.root, vpath);
  }

  lstat(node: StorageNode, vpath: string): Promise<Stats> {
    return this.call(node, `lstat ${vpath}`, () => fs.lstat(this.where(node, vpath)));
  }

  /** lstat, or null when the entry does not exist on the node. */
  async lstatOrNull(node: StorageNode, vpath: string): Promise<Stats | null> {
    try {
      return await this.lstat(node, vpath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw err;
    }
  }

  readdir(node: StorageNode, vpath: string): Promise<Dirent[]> {
    return this.call(node, `readdir ${vpath}`, () => fs.readdir(this.where(node, vpath), { withFileTypes: true }));
  }

  open(node: StorageNode, vpath: string, flags: number, mode = 0o644): Promise<fs.FileHandle> {
    return this.call(
      node,
      `open ${vpath}`,
      () => fs.open(this.where(node, vpath), flags, mode),
      (fh) => void fh.close().catch(() => undefined),
    );
  }

  async read(node: StorageNode, fh: fs.FileHandle, length: number, position: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    const bytesRead = await this.readInto(node, fh, buf, position);
    return bytesRead === length ? buf : buf.subarray(0, bytesRead);
  }

  /**
   * Read up to `dst.length` bytes at `position` straight into `dst`; resolves
   * to the number of bytes read (0 at end of file). No allocation, no copy.
   * `dst` must stay valid memory even after this rejects: a call that timed
   * out may still complete later on its thread and write into it (so never
   * pass a buffer that is freed when you answer, such as FUSE's own).
   */
  readInto(node: StorageNode, fh: fs.FileHandle, dst: Buffer, position: number): Promise<number> {
    return this.call(node, 'read', async () => (await fh.read(dst, 0, dst.length, position)).bytesRead);
  }

  async write(node: StorageNode, fh: fs.FileHandle, data: Buffer, position: number): Promise<number> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.call(node, 'write', () => fh.write(data, done, data.length - done, position + done));
      if (bytesWritten === 0) throw ioError('EIO', 'short write');
      done += bytesWritten;
    }
    return done;
  }

  fsync(node: StorageNode, fh: fs.FileHandle): Promise<void> {
    return this.call(node, 'fsync', () => fh.sync());
  }

  /** fsync a folder (a rename in it made durable). */
  fsyncDir(node: StorageNode, vpath: string): Promise<void> {
    return this.call(node, `fsync ${vpath}`, async () => {
      const fh = await fs.open(this.where(node, vpath), 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  }

  fstat(node: StorageNode, fh: fs.FileHandle): Promise<Stats> {
    return this.call(node, 'fstat', () => fh.stat());
  }

  ftruncate(node: StorageNode, fh: fs.FileHandle, size: number): Promise<void> {
    return this.call(node, 'ftruncate', () => fh.truncate(size));
  }

  /** Close a handle without waiting more than the time-out (a hung close must not block release). */
  async close(node: StorageNode, fh: fs.FileHandle): Promise<void> {
    await this.call(node, 'close', () => fh.close()).catch((err: unknown) => this.log.debug({ node: node.name, err }, 'close failed'));
  }

  unlink(node: StorageNode, vpath: string): Promise<void> {
    return this.call(node, `unlink ${vpath}`, () => fs.unlink(this.where(node, vpath)));
  }

  rmdir(node: StorageNode, vpath: string): Promise<void> {
    return this.call(node, `rmdir ${vpath}`, () => fs.rmdir(this.where(node, vpath)));
  }

  async mkdirp(node: StorageNode, vpath: string, mode = 0o755): Promise<void> {
    if (vpath === '/') return;
    await this.call(node, `mkdir ${vpath}`, () => fs.mkdir(this.where(node, vpath), { recursive: true, mode }));
  }

  mkdir(node: StorageNode, vpath: string, mode = 0o755): Promise<void> {
    return this.call(node, `mkdir ${vpath}`, () => fs.mkdir(this.where(node, vpath), { mode }));
  }

  rename(node: StorageNode, from: string, to: string): Promise<void> {
    return this.call(node, `rename ${from}`, () => fs.rename(this.where(node, from), this.where(node, to)));
  }

  chmod(node: StorageNode, vpath: string, mode: number): Promise<void> {
    return this.call(node, `chmod ${vpath}`, () => fs.chmod(this.where(node, vpath), mode));
  }

  lchown(node: StorageNode, vpath: string, uid: number, gid: number): Promise<void> {
    return this.call(node, `chown ${vpath}`, () => fs.lchown(this.where(node, vpath), uid, gid));
  }

  lutimes(node: StorageNode, vpath: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return this.call(node, `utimes ${vpath}`, () => fs.lutimes(this.where(node, vpath), atimeMs / 1000, mtimeMs / 1000));
  }

  truncate(node: StorageNode, vpath: string, size: number): Promise<void> {
    return this.call(node, `truncate ${vpath}`, () => fs.truncate(this.where(node, vpath), size));
  }

  symlink(node: StorageNode, target: string, vpath: string): Promise<void> {
    return this.call(node, `symlink ${vpath}`, () => fs.symlink(target, this.where(node, vpath)));
  }

  readlink(node: StorageNode, vpath: string): Promise<string> {
    return this.call(node, `readlink ${vpath}`, () => fs.readlink(this.where(node, vpath)));
  }

  /** Space of the node's file system, cached for `maxAgeMs`. */
  async space(node: StorageNode, maxAgeMs = 2000): Promise<SpaceInfo> {
    const hit = this.spaceCache.get(node.name);
    if (hit && Date.now() - hit.at < maxAgeMs) return hit.space;
    const s = await this.call(node, 'statfs', () => fs.statfs(node.root));
    const space = { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
    this.spaceCache.set(node.name, { at: Date.now(), space });
    return space;
  }

  /** Forget cached space (after a create filled a node). */
  forgetSpace(node: StorageNode): void {
    this.spaceCache.delete(node.name);
  }
}

/** open(2) flags used by the filesystem layer. */
export const OPEN = {
  RDONLY: fsc.O_RDONLY,
  RDWR: fsc.O_RDWR,
  CREAT: fsc.O_CREAT,
  TRUNC: fsc.O_TRUNC,
  APPEND: fsc.O_APPEND,
  EXCL: fsc.O_EXCL,
  NOFOLLOW: fsc.O_NOFOLLOW,
} as const;

export function nodeRootName(node: StorageNode): string {
  return `${node.name} (${path.resolve(node.root)})`;
}
