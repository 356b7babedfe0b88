/**
 * fsync off the libuv thread pool. An fsync holds a pool thread for a disk
 * flush (milliseconds); with the default 4 threads, four of them stall every
 * other file operation of the agent (opens, writes, renames). Here a few
 * worker threads call fsyncSync on the (process-wide) file descriptor, so
 * many files are flushed at once (the file system groups their journal
 * commits) while the pool keeps serving the rest.
 */
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { fsyncSync } = require('node:fs');
parentPort.on('message', ({ id, fd }) => {
  try {
    fsyncSync(fd);
    parentPort.postMessage({ id, error: null });
  } catch (err) {
    parentPort.postMessage({ id, error: { message: err.message, code: err.code } });
  }
});
`;

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FsyncPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { fd: number; p: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly size = 8) {}

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: { id: number; error: { message: string; code?: string } | null }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (p) {
        if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
        else p.resolve();
      }
      this.idle.push(w);
      this.pump();
    });
    w.on('error', (err) => {
      // a worker that died takes its request with it: fail the requests waiting on it
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(err);
      }
    });
    this.workers.push(w);
    return w;
  }

  private pump(): void {
    while (this.queue.length) {
      let w = this.idle.pop();
      if (!w && this.workers.length < this.size) w = this.spawn();
      if (!w) return;
      const { fd, p } = this.queue.shift()!;
      const id = this.nextId++;
      this.pending.set(id, p);
      w.postMessage({ id, fd });
    }
  }

  /** fsync the open file descriptor `fd` (keep it open until this resolves). */
  fsync(fd: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ fd, p: { resolve, reject } });
      this.pump();
    });
  }

  /** Stop the workers (a later fsync starts new ones). */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.idle.length = 0;
  }
}
