/**
 * The metadata store: the only module family that imports `pg`.
 *
 * - `MetaStore.open(config)` resolves the database (configured URL, or the
 *   host's embedded server) and opens a bounded pool.
 * - `query()` runs one parameterised statement; `txn()` runs a function in one
 *   transaction and retries it on serialization failures and deadlocks with
 *   bounded, jittered backoff.
 * - `listen()` keeps a dedicated connection LISTENing, reconnecting with
 *   backoff when the server goes away, and tells the caller when it had to
 *   reconnect (notifications may have been missed: drop caches).
 * - `notify()` announces a change to every process of the grid.
 *
 * Concern modules (nodes, files, folders, replicas, backups, problems, ...)
 * are plain functions over a `Queryable`, so they run inside or outside a
 * transaction alike.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Config } from '../config/schema.js';
import { ensureEmbedded } from '../embedded/server.js';
import { GeoError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

// int8 (bigint) -> number: sizes, seqs and ns times all fit in 2^53 for the
// foreseeable future; refuse silently-wrong values instead of rounding.
pg.types.setTypeParser(20, (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${v} exceeds 2^53`);
  return n;
});

export type Row = Record<string, unknown>;

/** Something that runs a parameterised statement: the store itself or a transaction. */
export interface Queryable {
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

/** SQLSTATEs worth retrying a whole transaction for. */
const RETRYABLE = new Set(['40001', '40P01']);

/** True when the error means the database is unreachable (not a bad statement). */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (!e) return false;
  if (typeof e.code === 'string' && (e.code.startsWith('08') || e.code === '57P01' || e.code === '57P02' || e.code === '57P03')) return true;
  if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EPIPE' || e.code === 'ETIMEDOUT' || e.code === 'ENOTFOUND') return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(e.message ?? '');
}

export interface TxnOptions {
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** attempts in all (default 8) */
  attempts?: number;
}

export interface ListenHandle {
  close(): Promise<void>;
}

/** Something that runs a function in one (retried) transaction: the store, or a connection holding path locks. */
export interface TxnRunner {
  txn<T>(fn: (tx: Queryable) => Promise<T>, opts?: TxnOptions): Promise<T>;
}

/** Statements on the connection that holds path locks (see withPathLocks); its txn() runs on that same connection. */
export interface LockedDb extends Queryable, TxnRunner {}

export interface PathLockOptions {
  /** 'wait' blocks until every lock is free (mounts); 'try' gives up at once (replicators) */
  mode: 'wait' | 'try';
  /**
   * Resolve with fn's result as soon as fn is done, releasing the locks
   * right after in the background (the connection returns to the pool once
   * they are released). Default false: released before the call resolves.
   */
  releaseLater?: boolean;
  /**
   * Take every lock shared, also those of the paths themselves. For the
   * replicators: each changes only its own node's folder (one replicator
   * per node), so they need not exclude each other, only the mounts and
   * walks (which lock their paths exclusively). Default false.
   */
  shared?: boolean;
}

/** The locks of withPathLocks could not be taken: the database is unreachable (`cause`), or (mode 'try') one was taken. */
export class PathLockUnavailable extends Error {
  constructor(
    readonly busy: boolean,
    options?: { cause?: unknown },
  ) {
    super(busy ? 'path locked by another process' : 'cannot take path locks: database unreachable', options);
    this.name = 'PathLockUnavailable';
  }
}

export interface OpenOptions {
  log?: Logger;
  applicationName?: string;
  /** override the pool size of config.database.poolSize */
  poolSize?: number;
  /** time-out of one connection attempt, and of one wait for a busy pool's connection (default 10 s) */
  connectTimeoutMs?: number;
}

/** How long a caller waits in all for one of a busy pool's connections before the wait is an error. */
const POOL_WAIT_MAX_MS = 60_000;

/** pg-pool's "every connection is checked out and none came back in time": the server answered, the pool is busy. */
export function isPoolBusy(err: unknown): boolean {
  return /timeout exceeded when trying to connect/.test((err as Error)?.message ?? '');
}

/** Resolve the connection URL: the configured one, or the embedded server's. */
export async function resolveDatabaseUrl(config: Config): Promise<string> {
  if (config.database.url) return config.database.url;
  return (await ensureEmbedded(config.dataDir)).url;
}

/** A URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The locks for changing `paths` (sql/0004): each path exclusive, every
 * folder above it (not the root) shared; a path wanted both ways is
 * exclusive. The same set as geogridfs_path_lock_keys computes, keyed the
 * same way by the statements below, in one round trip.
 */
export function lockSet(paths: readonly string[]): { locks: string[]; exclusive: boolean[] } {
  const want = new Map<string, boolean>();
  for (const p of paths) {
    if (p === '/') continue;
    want.set(p, true);
    for (let i = p.indexOf('/', 1); i > 0; i = p.indexOf('/', i + 1)) {
      const a = p.slice(0, i);
      if (!want.has(a)) want.set(a, false);
    }
  }
  return { locks: [...want.keys()], exclusive: [...want.values()] };
}

const LOCK_KEYS = `SELECT hashtextextended('ggfs-path:' || p, 0) AS k, e FROM unnest($1::text[], $2::bool[]) AS x(p, e)`;
/** in key order (no deadlock between lockers), each waiting */
const LOCK_SQL = `SELECT count(CASE WHEN u.e THEN pg_advisory_lock(u.k) ELSE pg_advisory_lock_shared(u.k) END) FROM (${LOCK_KEYS} ORDER BY 1) u`;
const TRY_LOCK_SQL = `SELECT array_agg(CASE WHEN u.e THEN pg_try_advisory_lock(u.k) ELSE pg_try_advisory_lock_shared(u.k) END) AS got,
  array_agg(u.k::text) AS k, array_agg(u.e) AS e FROM (${LOCK_KEYS}) u`;
const UNLOCK_SQL = `SELECT count(CASE WHEN u.e THEN pg_advisory_unlock(u.k) ELSE pg_advisory_unlock_shared(u.k) END) FROM (${LOCK_KEYS}) u`;
const UNLOCK_KEYS_SQL = `SELECT count(CASE WHEN e THEN pg_advisory_unlock(k) ELSE pg_advisory_unlock_shared(k) END) FROM unnest($1::bigint[], $2::bool[]) AS x(k, e)`;

/**
 * A parameterised statement as a named prepared statement: PostgreSQL
 * parses and plans it once per connection instead of at every call (the
 * mount's commit is a CTE whose planning cost more than its execution).
 * Every statement of the metadata store is static text with parameters, so
 * the names (a hash of the text) are few. Statements without parameters
 * (BEGIN, COMMIT, DDL, LISTEN) stay unnamed.
 */
const names = new Map<string, string>();
function statement(sql: string, params: readonly unknown[]): pg.QueryConfig {
  if (params.length === 0) return { text: sql };
  let name = names.get(sql);
  if (!name) {
    name = 'g' + createHash('sha1').update(sql).digest('hex').slice(0, 20);
    if (names.size < 10_000) names.set(sql, name);
  }
  return { name, text: sql, values: params as unknown[] };
}

/** A checked-out pool connection (MetaStore.lease). */
interface Lease {
  readonly client: pg.PoolClient;
  /** set when the connection failed: release() makes the pool drop it */
  broken: boolean;
  /** back to the pool (once; later calls do nothing) */
  release(): void;
}

export class MetaStore implements Queryable {
  readonly pool: pg.Pool;
  readonly url: string;
  readonly log: Logger;
  private closed = false;
  private listeners = new Set<{ close(): Promise<void> }>();

  private constructor(url: string, pool: pg.Pool, log: Logger) {
    this.url = url;
    this.pool = pool;
    this.log = log;
  }

  /** Open a pool on the configured (or embedded) database. Does not migrate. */
  static async open(config: Config, opts: OpenOptions = {}): Promise<MetaStore> {
    const url = await resolveDatabaseUrl(config);
    return MetaStore.connect(url, { ...opts, statementTimeoutMs: config.database.statementTimeoutMs, poolSize: opts.poolSize ?? config.database.poolSize });
  }

  /** Open a pool on an explicit URL. */
  static async connect(url: string, opts: OpenOptions & { statementTimeoutMs?: number } = {}): Promise<MetaStore> {
    const log = opts.log ?? silentLogger;
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      application_name: opts.applicationName ?? 'geogridfs',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      statement_timeout: opts.statementTimeoutMs ?? 30_000,
      keepAlive: true,
    });
    // an idle client losing its connection must not crash the process
    pool.on('error', (err) => log.warn({ err: err.message }, 'database connection lost (idle client)'));
    const store = new MetaStore(url, pool, log);
    try {
      await store.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new GeoError('DB_UNREACHABLE', `cannot reach PostgreSQL at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const lease = await this.lease();
    try {
      return (await lease.client.query<T>(statement(sql, params))).rows;
    } catch (err) {
      if (isConnectionError(err)) lease.broken = true;
      throw err;
    } finally {
      lease.release();
    }
  }

  /**
   * A connection checked out of the pool, marked broken when it reports an
   * error (a connection lost while checked out surfaces as the failing
   * query's rejection; its 'error' event must not become an uncaught
   * exception) so that release() makes the pool drop it.
   */
  private async lease(): Promise<Lease> {
    const client = await this.acquire();
    let released = false;
    const onError = () => {
      lease.broken = true;
    };
    const lease: Lease = {
      client,
      broken: false,
      release: () => {
        if (released) return;
        released = true;
        client.off('error', onError);
        client.release(lease.broken);
      },
    };
    client.on('error', onError);
    return lease;
  }

  /**
   * A connection of the pool. pg-pool gives up waiting for a busy pool's
   * connection after its connect time-out with the same kind of error as an
   * unreachable server's; a busy pool is not an outage (a mount would go
   * degraded and change files without the grid-wide locks while the
   * replicators still run), so that wait is retried, up to
   * POOL_WAIT_MAX_MS in all, with a warning.
   */
  private async acquire(): Promise<pg.PoolClient> {
    const started = Date.now();
    for (;;) {
      try {
        return await this.pool.connect();
      } catch (err) {
        if (!isPoolBusy(err) || this.closed) throw err;
        const waitedMs = Date.now() - started;
        if (waitedMs >= POOL_WAIT_MAX_MS) {
          throw new GeoError('DB_BUSY', `every one of this process's ${this.pool.options.max} database connections stayed busy for ${Math.round(waitedMs / 1000)} s (database.poolSize)`, { cause: err });
        }
        this.log.warn({ waitedMs, connections: this.pool.totalCount, waiting: this.pool.waitingCount }, "every database connection of this process is busy: still waiting for one");
      }
    }
  }

  /**
   * Run `fn` in one transaction. Serialization failures and deadlocks roll
   * back and retry the whole function (so `fn` must have no side effects
   * outside the database), with exponential backoff and jitter, up to
   * `attempts` times; any other error rolls back and is thrown.
   */
  async txn<T>(fn: (tx: Queryable) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    const lease = await this.lease();
    try {
      return await this.txnOn(lease, fn, opts);
    } finally {
      lease.release();
    }
  }

  /**
   * Run `fn` holding the grid-wide locks of `paths` (sql/0004: exclusive on
   * each path, shared on the folders above): every process that changes the
   * bytes at a node path holds them from its decision to its metadata
   * record. `fn` gets the locking connection for its statements; the locks
   * are released after fn (and its statements' commits), also when fn
   * throws. Throws PathLockUnavailable (before fn runs) when the database
   * is unreachable or, in mode 'try', when a lock is taken (`busy`).
   */
  async withPathLocks<T>(paths: readonly string[], opts: PathLockOptions, fn: (db: LockedDb) => Promise<T>): Promise<T> {
    const set = lockSet(paths);
    const locks = set.locks;
    const exclusive = opts.shared ? set.exclusive.map(() => false) : set.exclusive;
    let lease: Lease;
    try {
      lease = await this.lease();
    } catch (err) {
      if (!isConnectionError(err)) throw err; // a busy pool, not an unreachable database
      throw new PathLockUnavailable(false, { cause: err });
    }
    const client = lease.client;
    try {
      if (opts.mode === 'wait') {
        await client.query(statement(LOCK_SQL, [locks, exclusive]));
      } else {
        const r = await client.query<{ got: boolean[]; k: string[]; e: boolean[] }>(statement(TRY_LOCK_SQL, [locks, exclusive]));
        const row = r.rows[0]!;
        if (!row.got.every(Boolean)) {
          // all or nothing: give back the ones this try got
          const keys = row.k.filter((_, i) => row.got[i]);
          const modes = row.e.filter((_, i) => row.got[i]);
          if (keys.length) await client.query(statement(UNLOCK_KEYS_SQL, [keys, modes]));
          lease.release();
          throw new PathLockUnavailable(true);
        }
      }
    } catch (err) {
      if (err instanceof PathLockUnavailable) throw err;
      lease.broken = true; // whatever it held goes with the connection
      lease.release();
      if (isConnectionError(err)) throw new PathLockUnavailable(false, { cause: err });
      throw err;
    }
    const unlock = async () => {
      try {
        if (!lease.broken) await client.query(statement(UNLOCK_SQL, [locks, exclusive]));
      } catch {
        lease.broken = true; // the server drops a broken session's locks
      } finally {
        lease.release();
      }
    };
    const db: LockedDb = {
      query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => (await client.query<R>(statement(sql, params))).rows,
      txn: (f, o) => this.txnOn(lease, f, o),
    };
    let result: T;
    try {
      result = await fn(db);
    } catch (err) {
      await unlock();
      throw err;
    }
    if (opts.releaseLater) void unlock();
    else await unlock();
    return result;
  }

  /**
   * Run `fn` in one transaction on a checked-out connection. Serialization
   * failures and deadlocks roll back and retry the whole function (so `fn`
   * must have no side effects outside the database), with exponential
   * backoff and jitter, up to `attempts` times; any other error, or a
   * rollback that fails (the connection is gone), is thrown.
   */
  private async txnOn<T>(lease: Lease, fn: (tx: Queryable) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    const attempts = opts.attempts ?? 8;
    const client = lease.client;
    const tx: Queryable = {
      query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => (await client.query<R>(statement(sql, params))).rows,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(opts.isolation ? `BEGIN ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : 'BEGIN');
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          lease.broken = true;
        });
        if (isConnectionError(err)) lease.broken = true;
        const code = (err as { code?: string }).code;
        if (!lease.broken && code && RETRYABLE.has(code) && attempt < attempts) {
          const delay = Math.min(1000, 5 * 2 ** attempt) * (0.5 + Math.random());
          this.log.debug({ code, attempt, delay }, 'transaction conflict, retrying');
          await sleep(delay);
          continue;
        }
        throw err;
      }
    }
  }

  /** Announce `payload` on `channel` to every LISTENing process (delivered at commit when run in a transaction). */
  async notify(channel: string, payload: string, db: Queryable = this): Promise<void> {
    await db.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  /**
   * LISTEN on `channel` on a dedicated connection. `onNotify` gets each
   * payload; `onReconnect` is called after the connection was lost and
   * re-established (notifications in between are lost: invalidate caches).
   */
  async listen(
    channel: string,
    onNotify: (payload: string) => void,
    opts: { onReconnect?: () => void; onDisconnect?: (err: Error) => void } = {},
  ): Promise<ListenHandle> {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
    let client: pg.Client | null = null;
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const connect = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: this.url, keepAlive: true, application_name: 'geogridfs-listen' });
      c.on('notification', (msg) => {
        if (msg.channel === channel) onNotify(msg.payload ?? '');
      });
      c.on('error', (err) => {
        if (stopped) return;
        this.log.warn({ channel, err: err.message }, 'LISTEN connection lost; reconnecting');
        opts.onDisconnect?.(err);
        c.end().catch(() => undefined);
        if (client === c) client = null;
        schedule(1);
      });
      await c.connect();
      await c.query(`LISTEN ${channel}`);
      client = c;
    };
    const schedule = (attempt: number): void => {
      if (stopped || timer) return;
      timer = setTimeout(
        () => {
          timer = null;
          connect().then(
            () => {
              this.log.info({ channel }, 'LISTEN connection restored');
              opts.onReconnect?.();
            },
            () => schedule(attempt + 1),
          );
        },
        Math.min(5000, 100 * 2 ** attempt),
      );
      timer.unref();
    };
    await connect();
    const handle = {
      close: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        this.listeners.delete(handle);
        await client?.end().catch(() => undefined);
      },
    };
    this.listeners.add(handle);
    return handle;
  }

  /**
   * Try a session-level advisory lock on a dedicated connection; returns a
   * release function, or null if another session holds it. If that
   * connection dies while held (database restart), the lock is gone:
   * `onLost` is told, and the error never escapes as an uncaught exception.
   */
  async tryAdvisoryLock(key: string, opts: { onLost?: (err: Error) => void } = {}): Promise<(() => Promise<void>) | null> {
    const client = await this.acquire();
    let lost: Error | null = null;
    const onError = (err: Error) => {
      if (lost) return;
      lost = err;
      this.log.warn({ key, err: err.message }, 'connection holding an advisory lock was lost');
      opts.onLost?.(err);
    };
    client.on('error', onError);
    try {
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [key]);
      if (!r.rows[0]?.ok) {
        client.off('error', onError);
        client.release();
        return null;
      }
    } catch (err) {
      client.off('error', onError);
      client.release(true);
      throw err;
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      try {
        if (lost) throw lost;
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]);
        client.off('error', onError);
        client.release();
      } catch {
        client.off('error', onError);
        client.release(true);
      }
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.listeners].map((l) => l.close()));
    await this.pool.end();
  }
}
