/**
 * Per-backup-node limits, enforced by the server: allowed hours, concurrent
 * downloads and bytes per second. State lives in this process (one API
 * instance; behind several instances each enforces its own share).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ApiError } from './errors.js';

export interface Limits {
  bytesPerSec: number | null;
  maxConcurrent: number;
  /** int4range text like "[0,6)" or null */
  allowedHours: string | null;
}

/** Parse "[a,b)" (as PostgreSQL prints an int4range of hours) to [a, b), or null for "any time". */
export function parseHourRange(text: string | null): [number, number] | null {
  if (!text || text === 'empty') return text === 'empty' ? [0, 0] : null;
  const m = /^([[(])(\d*),(\d*)([\])])$/.exec(text);
  if (!m) return null;
  let lo = m[2] === '' ? 0 : Number(m[2]);
  let hi = m[3] === '' ? 24 : Number(m[3]);
  if (m[1] === '(') lo += 1;
  if (m[4] === ']') hi += 1;
  return [lo, hi];
}

/** Seconds until the allowed window opens, 0 when inside it now. */
export function secondsUntilAllowed(range: [number, number] | null, now = new Date()): number {
  if (!range) return 0;
  const [lo, hi] = range;
  const h = now.getHours();
  if (h >= lo && h < hi) return 0;
  if (lo >= hi) return 3600; // empty window: check back in an hour
  const secOfDay = h * 3600 + now.getMinutes() * 60 + now.getSeconds();
  const start = lo * 3600;
  return start > secOfDay ? start - secOfDay : 86400 - secOfDay + start;
}

/** A shared byte pacer: every stream of one backup node draws from it. */
class Pacer {
  private next = 0; // ms timestamp when the next byte may go
  constructor(public bytesPerSec: number) {}
  /** ms to wait before sending `n` bytes (reserving them) */
  reserve(n: number): number {
    const now = performance.now();
    const burstMs = 50;
    const start = Math.max(this.next, now - burstMs);
    this.next = start + (n * 1000) / this.bytesPerSec;
    return Math.max(0, this.next - now - burstMs);
  }
}

export class Throttle {
  private active = new Map<number, number>();
  private pacers = new Map<number, Pacer>();

  /**
   * Admit one download for a backup node, or throw GGFS_THROTTLED (429 with
   * Retry-After). Returns a release function to call exactly once.
   */
  admit(nodeId: number, limits: Limits, now = new Date()): () => void {
    const wait = secondsUntilAllowed(parseHourRange(limits.allowedHours), now);
    if (wait > 0) throw new ApiError('GGFS_THROTTLED', `downloads are allowed only in hours ${limits.allowedHours} (server time)`, { 'retry-after': String(wait) });
    const n = this.active.get(nodeId) ?? 0;
    if (n >= limits.maxConcurrent) {
      throw new ApiError('GGFS_THROTTLED', `at most ${limits.maxConcurrent} concurrent downloads`, { 'retry-after': '1', 'x-geogridfs-max-concurrent': String(limits.maxConcurrent) });
    }
    this.active.set(nodeId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.active.get(nodeId) ?? 1) - 1;
      if (left <= 0) this.active.delete(nodeId);
      else this.active.set(nodeId, left);
    };
  }

  /** Downloads in flight per backup node id. */
  inFlight(): Map<number, number> {
    return new Map(this.active);
  }

  /** A Transform that paces bytes to the node's rate (pass-through when unlimited). */
  pace(nodeId: number, bytesPerSec: number | null): Transform {
    if (!bytesPerSec) return new Transform({ transform: (chunk, _enc, cb) => cb(null, chunk) });
    let pacer = this.pacers.get(nodeId);
    if (!pacer) this.pacers.set(nodeId, (pacer = new Pacer(bytesPerSec)));
    pacer.bytesPerSec = bytesPerSec;
    const p = pacer;
    const slice = Math.max(1024, Math.min(64 * 1024, Math.floor(bytesPerSec / 20)));
    return new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        (async () => {
          for (let off = 0; off < chunk.length; off += slice) {
            const part = chunk.subarray(off, off + slice);
            const wait = p.reserve(part.length);
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            this.push(part);
          }
        })().then(() => cb(), cb);
      },
    });
  }
}
