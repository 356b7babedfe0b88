import t from 'tap';
import { testStore } from '../helpers/db.js';
import type { Queryable } from '../../src/meta/store.js';

t.test('txn retries serialization failures until both writers succeed', async (t) => {
  const { store } = await testStore(t);
  await store.query('CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)');
  await store.query('INSERT INTO counter VALUES (1, 0)');
  let attempts = 0;
  const bump = (tx: Queryable) =>
    (async () => {
      attempts++;
      const [row] = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
      await new Promise((r) => setTimeout(r, 50)); // let the other transaction read too
      await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [row!.n + 1]);
    })();
  await Promise.all(Array.from({ length: 4 }, () => store.txn(bump, { isolation: 'serializable' })));
  const [row] = await store.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
  t.equal(row!.n, 4, 'no lost update');
  t.ok(attempts > 4, `conflicts were retried (${attempts} attempts for 4 transactions)`);
});

t.test('txn rolls back on other errors and does not retry them', async (t) => {
  const { store } = await testStore(t);
  await store.query('CREATE TABLE x (id int PRIMARY KEY)');
  let attempts = 0;
  await t.rejects(
    store.txn(async (tx) => {
      attempts++;
      await tx.query('INSERT INTO x VALUES (1)');
      await tx.query('INSERT INTO x VALUES (1)');
    }),
    { code: '23505' },
  );
  t.equal(attempts, 1);
  t.same(await store.query('SELECT * FROM x'), [], 'rolled back');
});

t.test('LISTEN/NOTIFY reaches another connection at commit', async (t) => {
  const { store } = await testStore(t);
  const got: string[] = [];
  const h = await store.listen('geogridfs_test', (p) => got.push(p));
  await store.txn(async (tx) => {
    await store.notify('geogridfs_test', 'hello', tx);
    await new Promise((r) => setTimeout(r, 100));
    t.same(got, [], 'not delivered before commit');
  });
  for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(got, ['hello']);
  await h.close();
});

t.test('advisory lock: a second holder is refused until release', async (t) => {
  const { store } = await testStore(t);
  const release = await store.tryAdvisoryLock('k1');
  t.ok(release);
  t.equal(await store.tryAdvisoryLock('k1'), null);
  await release!();
  const again = await store.tryAdvisoryLock('k1');
  t.ok(again);
  await again!();
});
