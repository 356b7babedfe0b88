/**
 * A pool whose connections are all in use is busy, not gone: pg-pool gives
 * up waiting after its connect time-out with an error that looked like an
 * outage, and a mount then went degraded (changes without the grid-wide
 * locks while the replicators kept running). The wait is retried now.
 */
import t from 'tap';
import { createTestDatabase } from '../helpers/db.js';
import { sleep } from '../helpers/mount.js';
import { MetaStore, PathLockUnavailable, isConnectionError, isPoolBusy } from '../../src/meta/store.js';
import { migrate } from '../../src/meta/migrate.js';

t.test('waiting longer than the connect time-out for a busy pool: the call waits on, it is no outage', async (t) => {
  const url = await createTestDatabase(t);
  const store = await MetaStore.connect(url, { poolSize: 1, connectTimeoutMs: 400 });
  t.teardown(() => store.close());
  await migrate(store);

  // the one connection is busy for 1.5 s (several connect time-outs)
  const holding = store.txn(async (tx) => {
    await tx.query('SELECT pg_sleep(1.5)');
    return 'held';
  });
  await sleep(100);
  const started = Date.now();
  const [held, q, locked] = await Promise.all([
    holding,
    store.query<{ x: number }>('SELECT 7 AS x'),
    store.withPathLocks(['/a/b'], { mode: 'wait' }, async (db) => (await db.query<{ y: number }>('SELECT 8 AS y'))[0]!.y).catch((err: unknown) => err),
  ]);
  t.equal(held, 'held');
  t.equal(q[0]?.x, 7, 'the query ran once the connection was free');
  t.notOk(locked instanceof PathLockUnavailable, 'path locks: not reported as an unreachable database');
  t.equal(locked, 8, 'and taken once the connection was free');
  t.ok(Date.now() - started >= 1000, 'it did wait for the busy connection');
});

t.test('an unreachable server is still an outage, promptly', async (t) => {
  // a port nothing listens on
  const url = 'postgresql://x:y@127.0.0.1:9/none';
  const err = await MetaStore.connect(url, { poolSize: 1, connectTimeoutMs: 400 }).catch((e: unknown) => e as Error);
  t.match((err as Error).message, /cannot reach PostgreSQL at postgresql:\/\/x:\*\*\*@127\.0\.0\.1:9\/none/);
  t.ok(isConnectionError((err as Error).cause), 'the cause is a connection error');
  t.notOk(isPoolBusy((err as Error).cause), 'and not a busy pool');
});
