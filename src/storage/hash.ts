/**
 * Hashing (and hash-while-copying) off the JavaScript thread: a small pool of
 * worker threads, at most `concurrency` files at once (p-queue), each read in
 * 1 MiB chunks with an optional bytes/s pace (scrub). A task whose worker
 * makes no progress for `stallMs` (a hung NFS server) fails with ETIMEDOUT
 * and its worker is abandoned, so one dead node cannot stall a run.
 */
import { Worker } from 'node:worker_threads';
import PQueue from 'p-queue';
import type { WorkerReply, WorkerTask, CopyTask, ManyResult } from './hash-worker.js';

export type { ManyResult };

export interface HashResult {
  /** sha256, lower-case hex */
  checksum: string;
  /** bytes actually read */
  size: number;
  /** mtime of the file when it was opened (ns) */
  mtimeUs: number;
}

export interface HashPoolOptions {
  concurrency: number;
  /** abandon a task after this long without progress (default 60 s) */
  stallMs?: number;
}

export class StorageError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
  }
}

const WORKER_URL = new URL('./hash-worker.js', import.meta.url);

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class HashPool {
  private readonly queue: PQueue;
  private readonly idle: Slot[] = [];
  private readonly all = new Set<Slot>();
  private nextId = 1;
  private readonly stallMs: number;
  private closed = false;

  constructor(opts: HashPoolOptions) {
    this.queue = new PQueue({ concurrency: Math.max(1, opts.concurrency) });
    this.stallMs = opts.stallMs ?? 60_000;
  }

  /** Tasks waiting or running. */
  get load(): number {
    return this.queue.size + this.queue.pending;
  }

  /** Resolves when fewer than `n` tasks wait (back-pressure for producers). */
  async whenBelow(n: number): Promise<void> {
    await this.queue.onSizeLessThan(n);
  }

  /** sha256 of a file's content. Rejects with StorageError (code from the fs: ENOENT, EISDIR, ETIMEDOUT...). */
  hash(path: string, bytesPerSec = 0): Promise<HashResult> {
    return this.queue.add(() => this.run({ kind: 'hash', id: this.nextId++, path, bytesPerSec }));
  }

  /** sha256 of several small files in one worker round trip; per-file errors are returned, not thrown. */
  hashMany(paths: string[]): Promise<ManyResult[]> {
    return this.queue.add(() => this.run({ kind: 'hashMany', id: this.nextId++, paths })) as Promise<unknown> as Promise<ManyResult[]>;
  }

  /**
   * Copy `source` to `target` (created or truncated, never renamed here),
   * hashing what was read; sets mode, owner (when permitted) and times, and
   * fsyncs the target before resolving.
   */
  copy(task: Omit<CopyTask, 'kind' | 'id'>): Promise<HashResult> {
    return this.queue.add(() => this.run({ kind: 'copy', id: this.nextId++, ...task }));
  }

  private slot(): Slot {
    const s = this.idle.pop();
    if (s) return s;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    const slot: Slot = { worker, busy: false };
    this.all.add(slot);
    return slot;
  }

  private run(task: WorkerTask): Promise<HashResult> {
    const what = task.kind === 'copy' ? task.source : task.kind === 'hash' ? task.path : `${task.paths.length} files`;
    if (this.closed) return Promise.reject(new StorageError('hash pool closed'));
    const slot = this.slot();
    slot.busy = true;
    return new Promise<HashResult>((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          cleanup();
          // the thread may be stuck in a syscall: drop it, never reuse it
          this.all.delete(slot);
          slot.worker.terminate().catch(() => undefined);
          reject(new StorageError(`no progress for ${this.stallMs} ms on ${what}`, 'ETIMEDOUT'));
        }, this.stallMs);
      };
      const onMessage = (m: WorkerReply) => {
        if (m.id !== task.id) return;
        if (m.type === 'progress') return arm();
        cleanup();
        slot.busy = false;
        if (!this.closed) this.idle.push(slot);
        if (m.type === 'done') resolve({ checksum: m.checksum, size: m.size, mtimeUs: m.mtimeUs });
        else if (m.type === 'many') resolve(m.results as unknown as HashResult);
        else reject(new StorageError(m.message, m.code));
      };
      const onError = (err: Error) => {
        cleanup();
        this.all.delete(slot);
        reject(new StorageError(`hash worker failed: ${err.message}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        slot.worker.off('message', onMessage);
        slot.worker.off('error', onError);
      };
      slot.worker.on('message', onMessage);
      slot.worker.on('error', onError);
      arm();
      slot.worker.postMessage(task);
    });
  }

  /** Wait for queued work, then stop the workers. */
  async close(): Promise<void> {
    await this.queue.onIdle();
    this.closed = true;
    await Promise.all([...this.all].map((s) => s.worker.terminate().catch(() => undefined)));
    this.all.clear();
    this.idle.length = 0;
  }
}
