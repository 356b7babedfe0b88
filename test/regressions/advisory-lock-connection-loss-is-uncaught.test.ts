// Bug: a replicator holding its advisory lock crashed with an uncaught
// "terminating connection due to administrator command" when the database
// restarted, because the lock's checked-out connection had no error handler.
import t from 'tap';
import { testStore } from '../helpers/db.js';

t.test('losing the connection that holds an advisory lock is reported, not thrown', async (t) => {
  const { store } = await testStore(t);
  const lostErrors: Error[] = [];
  const release = await store.tryAdvisoryLock('regression:lock', { onLost: (e) => lostErrors.push(e) });
  t.ok(release, 'lock taken');
  await store.query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
  for (let i = 0; i < 50 && lostErrors.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(lostErrors.length, 1, 'onLost told once');
  await release!();
  const again = await store.tryAdvisoryLock('regression:lock');
  t.ok(again, 'the lock is free again (the server dropped it with the session)');
  await again!();
});

t.test('losing a connection inside txn() rejects the transaction, no uncaught error', async (t) => {
  const { store } = await testStore(t);
  await t.rejects(
    store.txn(async (tx) => {
      await tx.query('SELECT pg_terminate_backend(pg_backend_pid())');
    }),
  );
  const [row] = await store.query<{ ok: number }>('SELECT 1 AS ok');
  t.equal(row!.ok, 1, 'the pool still works');
});
