/**
 * Worker thread body for src/storage/hash.ts: hashes (and optionally copies)
 * one file at a time with blocking reads, so that neither sha256 nor the
 * read loop runs on the main JavaScript thread. Posts a progress tick after
 * every chunk (the pool's watchdog uses it to abandon a hung NFS read).
 */
import { parentPort } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { openSync, readSync, writeSync, closeSync, fsyncSync, fchmodSync, fchownSync, futimesSync, fstatSync } from 'node:fs';

export interface HashTask {
  kind: 'hash';
  id: number;
  path: string;
  /** read rate limit in bytes/s (0 = none) */
  bytesPerSec: number;
}

export interface CopyTask {
  kind: 'copy';
  id: number;
  source: string;
  /** the temp file to create (truncated if it exists) */
  target: string;
  mode: number;
  uid: number | null;
  gid: number | null;
  atimeUs: number;
  mtimeUs: number;
  bytesPerSec: number;
}

/** Several small files in one message (the per-message cost dominates for them). */
export interface HashManyTask {
  kind: 'hashMany';
  id: number;
  paths: string[];
}

export type WorkerTask = HashTask | CopyTask | HashManyTask;

export type ManyResult = { checksum: string; size: number; mtimeUs: number } | { error: string; code?: string };

export type WorkerReply =
  | { id: number; type: 'progress'; bytes: number }
  | { id: number; type: 'done'; checksum: string; size: number; mtimeUs: number }
  | { id: number; type: 'many'; results: ManyResult[] }
  | { id: number; type: 'error'; message: string; code?: string };

const CHUNK = 1 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function pace(started: number, bytes: number, bytesPerSec: number): void {
  if (bytesPerSec <= 0) return;
  const due = started + (bytes / bytesPerSec) * 1000;
  const wait = due - Date.now();
  if (wait > 0) Atomics.wait(sleeper, 0, 0, wait);
}

function runMany(task: HashManyTask): WorkerReply {
  const results: ManyResult[] = task.paths.map((path) => {
    try {
      const r = run({ kind: 'hash', id: task.id, path, bytesPerSec: 0 });
      return r.type === 'done' ? { checksum: r.checksum, size: r.size, mtimeUs: r.mtimeUs } : { error: 'unexpected reply' };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { error: e.message, ...(e.code ? { code: e.code } : {}) };
    }
  });
  return { id: task.id, type: 'many', results };
}

function run(task: HashTask | CopyTask): WorkerReply {
  const hash = createHash('sha256');
  const src = openSync(task.kind === 'hash' ? task.path : task.source, 'r');
  let out: number | null = null;
  let size = 0;
  try {
    const before = fstatSync(src, { bigint: true });
    if (task.kind === 'copy') out = openSync(task.target, 'w', 0o600);
    const started = Date.now();
    let lastTick = started;
    for (;;) {
      const n = readSync(src, buffer, 0, CHUNK, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      if (out !== null) {
        let off = 0;
        while (off < n) off += writeSync(out, buffer, off, n - off);
      }
      size += n;
      const now = Date.now();
      if (now - lastTick >= 200) {
        parentPort!.postMessage({ id: task.id, type: 'progress', bytes: size } satisfies WorkerReply);
        lastTick = now;
      }
      pace(started, size, task.bytesPerSec);
    }
    if (out !== null && task.kind === 'copy') {
      fchmodSync(out, task.mode);
      if (task.uid !== null && task.gid !== null) {
        try {
          fchownSync(out, task.uid, task.gid);
        } catch {
          /* not root: keep our own ownership */
        }
      }
      futimesSync(out, task.atimeUs / 1e6, task.mtimeUs / 1e6);
      fsyncSync(out);
    }
    return { id: task.id, type: 'done', checksum: hash.digest('hex'), size, mtimeUs: Number(before.mtimeNs / 1000n) };
  } finally {
    closeSync(src);
    if (out !== null) closeSync(out);
  }
}

parentPort!.on('message', (task: WorkerTask) => {
  let reply: WorkerReply;
  try {
    reply = task.kind === 'hashMany' ? runMany(task) : run(task);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    reply = { id: task.id, type: 'error', message: e.message, ...(e.code ? { code: e.code } : {}) };
  }
  parentPort!.postMessage(reply);
});
