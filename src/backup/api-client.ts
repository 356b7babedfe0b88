/**
 * The backup agent's HTTP client: keep-alive connections, several API URLs
 * with failover (the one that worked last is tried first), retries of
 * transient failures with exponential backoff and jitter, and 429 handling
 * (waits Retry-After when it is short; gives up with ThrottledError when the
 * server says "come back in hours").
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The server throttled us for longer than we are willing to wait in this run. */
export class ThrottledError extends Error {
  constructor(
    readonly retryAfterSec: number,
    message: string,
    /** the server's limit of concurrent downloads for us, when it said so */
    readonly maxConcurrent: number | null = null,
  ) {
    super(message);
    this.name = 'ThrottledError';
  }
}

export interface ApiClientOptions {
  urls: string[];
  token: string;
  caFile?: string | undefined;
  maxSockets?: number;
  log?: Logger;
  /** longest Retry-After we sleep through (default 120 s) */
  maxRetryAfterSec?: number;
  /** attempts for transient errors (default 6) */
  attempts?: number;
  /** first backoff delay (default 500 ms) */
  backoffMs?: number;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

export interface StreamResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: IncomingMessage;
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET', 'ESOCKETTIMEDOUT']);

export function isTransient(err: unknown): boolean {
  if (err instanceof HttpError) return err.status >= 500 || err.status === 408;
  const code = (err as { code?: string }).code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason ?? new Error('aborted'));
    }, { once: true });
  });

export class ApiClient {
  private readonly urls: URL[];
  private current = 0;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly log: Logger;
  private readonly opts: ApiClientOptions;
  /** requests sent (all attempts), for the summary and tests */
  requests = 0;

  constructor(opts: ApiClientOptions) {
    if (opts.urls.length === 0) throw new Error('no API URL configured (backup.apiUrls)');
    this.opts = opts;
    this.urls = opts.urls.map((u) => new URL(u.replace(/\/+$/, '') + '/'));
    const sockets = opts.maxSockets ?? 8;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: sockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: sockets, ...(opts.caFile ? { ca: readFileSync(opts.caFile) } : {}) });
    this.log = opts.log ?? silentLogger;
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** The base URL in use now. */
  get baseUrl(): string {
    return this.urls[this.current]!.toString();
  }

  /** One request to one base URL; resolves when the response headers arrive. */
  private once(base: URL, method: string, pathAndQuery: string, headers: Record<string, string>, body: Buffer | null): Promise<StreamResponse> {
    const url = new URL(pathAndQuery.replace(/^\//, ''), base);
    const isHttps = url.protocol === 'https:';
    this.requests++;
    return new Promise((resolve, reject) => {
      const req = (isHttps ? https : http).request(
        url,
        {
          method,
          agent: isHttps ? this.httpsAgent : this.httpAgent,
          headers: { authorization: `Bearer ${this.opts.token}`, 'user-agent': 'geogridfs-backup', ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}), ...headers },
          timeout: this.opts.timeoutMs ?? 60_000,
          signal: this.opts.signal,
        },
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error(`request to ${url.host} timed out`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body ?? undefined);
    });
  }

  /**
   * Send a request, failing over between the URLs on connection errors and
   * 502/503/504. Returns the first other response (any status).
   */
  async send(method: string, pathAndQuery: string, headers: Record<string, string> = {}, body: Buffer | null = null): Promise<StreamResponse> {
    let lastErr: unknown = null;
    for (let i = 0; i < this.urls.length; i++) {
      const idx = (this.current + i) % this.urls.length;
      const base = this.urls[idx]!;
      try {
        const res = await this.once(base, method, pathAndQuery, headers, body);
        if ((res.status === 502 || res.status === 503 || res.status === 504) && i < this.urls.length - 1) {
          res.body.resume();
          lastErr = new HttpError(res.status, 'UNAVAILABLE', `${base.host} answered ${res.status}`);
          continue;
        }
        if (idx !== this.current) this.log.info({ api: base.origin }, 'switched to another API URL');
        this.current = idx;
        return res;
      } catch (err) {
        if (this.opts.signal?.aborted) throw err;
        if (!isTransient(err)) throw err;
        this.log.info({ api: base.origin, err: (err as Error).message }, 'API URL unreachable; trying the next');
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** Read a whole (small) response body. */
  static async readBody(res: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res) {
      n += (c as Buffer).length;
      if (n > limit) throw new Error('response too large');
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /** Turn a non-2xx response into HttpError / ThrottledError (consumes the body). */
  async errorFrom(res: StreamResponse): Promise<Error> {
    let code = `HTTP_${res.status}`;
    let message = `HTTP ${res.status}`;
    try {
      const j = JSON.parse((await ApiClient.readBody(res.body, 1 << 20)).toString('utf8')) as { error?: { code?: string; message?: string } };
      if (j.error?.code) code = j.error.code;
      if (j.error?.message) message = j.error.message;
    } catch {
      /* not JSON */
    }
    if (res.status === 429) {
      const ra = Number(res.headers['retry-after'] ?? 1);
      const mc = Number(res.headers['x-geogridfs-max-concurrent']);
      return new ThrottledError(Number.isFinite(ra) && ra >= 0 ? ra : 1, message, Number.isInteger(mc) && mc > 0 ? mc : null);
    }
    return new HttpError(res.status, code, message);
  }

  /**
   * Run `fn` with retries: transient errors back off exponentially (with
   * jitter), 429 waits Retry-After when ≤ maxRetryAfterSec, else throws
   * ThrottledError; other errors are thrown at once.
   */
  async withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.attempts ?? 6;
    const maxWait = this.opts.maxRetryAfterSec ?? 120;
    let failures = 0;
    let throttles = 0;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (this.opts.signal?.aborted) throw err;
        if (err instanceof ThrottledError) {
          if (err.retryAfterSec > maxWait || ++throttles > 1000) throw err;
          this.log.debug({ what, retryAfter: err.retryAfterSec }, 'throttled by the server; waiting');
          await sleep(Math.max(50, err.retryAfterSec * 1000) * (0.8 + 0.4 * Math.random()), this.opts.signal);
          continue;
        }
        if (!isTransient(err) || ++failures >= attempts) throw err;
        const delay = Math.min(30_000, (this.opts.backoffMs ?? 500) * 2 ** (failures - 1)) * (0.5 + Math.random());
        this.log.info({ what, err: (err as Error).message, attempt: failures, delayMs: Math.round(delay) }, 'transient failure; retrying');
        await sleep(delay, this.opts.signal);
      }
    }
  }

  /** A JSON request with retries. */
  async json<T>(method: 'GET' | 'POST', pathAndQuery: string, body?: unknown): Promise<T> {
    return this.withRetries(`${method} ${pathAndQuery.split('?')[0]}`, async () => {
      const res = await this.send(method, pathAndQuery, { accept: 'application/json' }, body === undefined ? null : Buffer.from(JSON.stringify(body)));
      if (res.status < 200 || res.status >= 300) throw await this.errorFrom(res);
      return JSON.parse((await ApiClient.readBody(res.body)).toString('utf8')) as T;
    });
  }
}
