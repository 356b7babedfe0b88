/**
 * What the filesystem needs of the metadata store, and a store that opens
 * itself later: a mount started while PostgreSQL is unreachable comes up
 * anyway (serving from the nodes, journaling) and connects when it can.
 */
import { MetaStore, PathLockUnavailable, type ListenHandle, type LockedDb, type PathLockOptions, type Queryable, type TxnOptions } from '../meta/store.js';

export interface MetaAccess extends Queryable {
  txn<T>(fn: (tx: Queryable) => Promise<T>, opts?: TxnOptions): Promise<T>;
  listen(channel: string, onNotify: (payload: string) => void, opts?: { onReconnect?: () => void; onDisconnect?: (err: Error) => void }): Promise<ListenHandle>;
  withPathLocks<T>(paths: readonly string[], opts: PathLockOptions, fn: (db: LockedDb) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Opens the real store on first use; until then every call fails with a connection error (ECONNREFUSED). */
export class LazyStore implements MetaAccess {
  private store: MetaStore | null = null;
  private opening: Promise<MetaStore> | null = null;

  constructor(private readonly open: () => Promise<MetaStore>) {}

  private get(): Promise<MetaStore> {
    if (this.store) return Promise.resolve(this.store);
    if (!this.opening) {
      this.opening = this.open().then(
        (s) => (this.store = s),
        (err: unknown) => {
          this.opening = null;
          throw Object.assign(new Error(`database unreachable: ${(err as Error).message}`), { code: 'ECONNREFUSED' });
        },
      );
    }
    return this.opening;
  }

  async query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return (await this.get()).query<T>(sql, params);
  }

  async txn<T>(fn: (tx: Queryable) => Promise<T>, opts?: TxnOptions): Promise<T> {
    return (await this.get()).txn(fn, opts);
  }

  async listen(channel: string, onNotify: (payload: string) => void, opts?: { onReconnect?: () => void; onDisconnect?: (err: Error) => void }): Promise<ListenHandle> {
    return (await this.get()).listen(channel, onNotify, opts);
  }

  async withPathLocks<T>(paths: readonly string[], opts: PathLockOptions, fn: (db: LockedDb) => Promise<T>): Promise<T> {
    let store: MetaStore;
    try {
      store = await this.get();
    } catch (err) {
      throw new PathLockUnavailable(false, { cause: err });
    }
    return store.withPathLocks(paths, opts, fn);
  }

  async close(): Promise<void> {
    await this.store?.close();
  }
}
