/**
 * Reading a file's content from the node folders for the API, with
 * failover: the current-version replicas are tried in order (active nodes
 * first, then by name); when the node serving a stream fails mid-way (I/O
 * error, time-out, the file shrank) the stream continues from the same
 * offset on the next replica, invisibly to the client.
 *
 * Nothing outside a node's root is reachable: virtual paths go through
 * onNode(), and the resolved real path (symlinks followed) must still lie
 * inside the node's real root.
 */
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { onNode } from '../util/vpath.js';

export interface ReplicaSource {
  nodeName: string;
  root: string;
  /** virtual path of the bytes on that node (replicas.path) */
  path: string;
}

const STATE_RANK: Record<string, number> = { active: 0, readonly: 1, drain: 2 };

/** The replicas worth reading, in the order to try them. */
/** What sourcesFor needs of a replica row. */
export interface ReplicaInfo {
  nodeName: string;
  nodeState: string;
  version: number;
  path: string;
}

export function sourcesFor(nodes: Record<string, string>, currentVersion: number, replicas: readonly ReplicaInfo[]): ReplicaSource[] {
  return replicas
    .filter((r) => r.version === currentVersion && r.nodeState in STATE_RANK && nodes[r.nodeName] !== undefined)
    .sort((a, b) => STATE_RANK[a.nodeState]! - STATE_RANK[b.nodeState]! || (a.nodeName < b.nodeName ? -1 : a.nodeName > b.nodeName ? 1 : 0))
    .map((r) => ({ nodeName: r.nodeName, root: nodes[r.nodeName]!, path: r.path }));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Real paths of node roots (they do not move while the API runs; re-resolved every few seconds anyway). */
const realRoots = new Map<string, { at: number; real: Promise<string> }>();
const REAL_ROOT_TTL_MS = 5000;

function realRoot(root: string): Promise<string> {
  const now = performance.now();
  let e = realRoots.get(root);
  if (!e || now - e.at > REAL_ROOT_TTL_MS) {
    e = { at: now, real: realpath(root) };
    e.real.catch(() => realRoots.delete(root));
    realRoots.set(root, e);
  }
  return e.real;
}

/** Open one replica's bytes, checking containment, type and size. */
async function openSource(src: ReplicaSource, expectedSize: number, timeoutMs: number): Promise<FileHandle> {
  const full = onNode(src.root, src.path);
  const [rootReal, real] = await withTimeout(Promise.all([realRoot(src.root), realpath(full)]), timeoutMs, `resolve on ${src.nodeName}`);
  if (real !== rootReal && !real.startsWith(rootReal.endsWith('/') ? rootReal : rootReal + '/')) {
    throw Object.assign(new Error(`${src.path} on ${src.nodeName} resolves outside the node root`), { code: 'EXDEV' });
  }
  const fh = await withTimeout(open(real, 'r'), timeoutMs, `open on ${src.nodeName}`);
  try {
    const st = await withTimeout(fh.stat(), timeoutMs, `stat on ${src.nodeName}`);
    if (!st.isFile()) throw Object.assign(new Error(`${src.path} on ${src.nodeName} is not a regular file`), { code: 'EISDIR' });
    if (st.size !== expectedSize) throw Object.assign(new Error(`${src.path} on ${src.nodeName} has ${st.size} bytes, expected ${expectedSize}`), { code: 'ESIZE' });
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

export interface ReplicaStreamOptions {
  sources: ReplicaSource[];
  size: number;
  /** first byte (inclusive) */
  start: number;
  /** last byte (inclusive) */
  end: number;
  timeoutMs: number;
  chunkBytes?: number;
  onFailover?: (from: string, err: Error) => void;
}

/**
 * A Readable of bytes [start, end] of a file, failing over between sources.
 * Call `ready()` before sending headers: it opens the first source that
 * works, or rejects (no replica reachable) while an error status can still
 * be sent.
 */
export class ReplicaStream extends Readable {
  private fh: FileHandle | null = null;
  private index = 0;
  private position: number;
  private readonly opts: ReplicaStreamOptions;
  private readonly chunkBytes: number;
  /** node currently serving */
  node: string | null = null;
  failovers = 0;

  constructor(opts: ReplicaStreamOptions) {
    super({ highWaterMark: opts.chunkBytes ?? 256 * 1024 });
    this.opts = opts;
    this.position = opts.start;
    this.chunkBytes = opts.chunkBytes ?? 256 * 1024;
  }

  /** Open the next source that works; throws the last error when none does. */
  async ready(): Promise<void> {
    let lastErr: Error | null = null;
    while (this.index < this.opts.sources.length) {
      const src = this.opts.sources[this.index]!;
      try {
        this.fh = await openSource(src, this.opts.size, this.opts.timeoutMs);
        this.node = src.nodeName;
        return;
      } catch (err) {
        lastErr = err as Error;
        this.opts.onFailover?.(src.nodeName, lastErr);
        this.index++;
      }
    }
    throw lastErr ?? new Error('no replica of the current version');
  }

  private async failover(err: Error): Promise<void> {
    this.failovers++;
    const failed = this.opts.sources[this.index]?.nodeName ?? '?';
    // do not wait for close: on a hung node it would hang too
    this.fh?.close().catch(() => undefined);
    this.fh = null;
    this.opts.onFailover?.(failed, err);
    this.index++;
    await this.ready();
  }

  override _read(): void {
    this.readChunk().then(
      (chunk) => {
        this.push(chunk);
      },
      (err: Error) => this.destroy(err),
    );
  }

  private async readChunk(): Promise<Buffer | null> {
    for (;;) {
      if (this.position > this.opts.end) return null;
      if (!this.fh) await this.ready();
      const want = Math.min(this.chunkBytes, this.opts.end - this.position + 1);
      // a fresh buffer per chunk: it is handed to the socket as it is (no copy)
      const buf = Buffer.allocUnsafe(want);
      try {
        const { bytesRead } = await withTimeout(this.fh!.read(buf, 0, want, this.position), this.opts.timeoutMs, `read on ${this.node}`);
        if (bytesRead === 0) throw Object.assign(new Error(`${this.node}: file ended at ${this.position} of ${this.opts.size} bytes`), { code: 'ESHORT' });
        this.position += bytesRead;
        return bytesRead === want ? buf : buf.subarray(0, bytesRead);
      } catch (err) {
        await this.failover(err as Error);
      }
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}
