/**
 * Buffers API request log entries and writes them in batches (one INSERT per
 * second at most), trimming the table to its configured bound. Losing a few
 * entries when the database is down is accepted; blocking requests is not.
 */
import type { MetaStore } from '../meta/store.js';
import { insertRequests, trimRequestLog, type RequestLogEntry } from '../meta/request-log.js';
import type { Logger } from '../util/log.js';

export class RequestLogger {
  private buffer: RequestLogEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private sinceTrim = 0;
  constructor(
    private readonly store: MetaStore,
    private readonly keepRows: number,
    private readonly log: Logger,
    private readonly maxBuffered = 10_000,
  ) {}

  add(entry: RequestLogEntry): void {
    if (this.buffer.length >= this.maxBuffered) this.buffer.shift();
    this.buffer.push(entry);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, 1000);
      this.timer.unref();
    }
  }

  /** Write everything buffered now (also called at shutdown and by tests). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    const batch = this.buffer.splice(0, this.buffer.length);
    if (batch.length === 0) return;
    this.flushing = (async () => {
      try {
        await insertRequests(this.store, batch);
        this.sinceTrim += batch.length;
        if (this.sinceTrim >= Math.max(100, Math.floor(this.keepRows / 20))) {
          this.sinceTrim = 0;
          await trimRequestLog(this.store, this.keepRows);
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message, lost: batch.length }, 'could not write the API request log');
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
