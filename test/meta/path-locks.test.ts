/**
 * Grid-wide path locks (sql/0004, MetaStore.withPathLocks) against a real
 * PostgreSQL: exclusive on a path, shared on the folders above it; 'try'
 * gives up at once, 'wait' waits; released after the function (also when it
 * throws) and by the server when a session dies.
 */
import t from 'tap';
import pg from 'pg';
import { testStore } from '../helpers/db.js';
import { PathLockUnavailable, type MetaStore } from '../../src/meta/store.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when a 'try' of `paths` gets its locks now (released again at once). */
async function free(store: MetaStore, paths: string[], shared = false): Promise<boolean> {
  try {
    await store.withPathLocks(paths, { mode: 'try', shared }, async () => undefined);
    return true;
  } catch (err) {
    if (err instanceof PathLockUnavailable && err.busy) return false;
    throw err;
  }
}

/** Hold the locks of `paths` until the returned release() is called. */
async function hold(store: MetaStore, paths: string[], shared = false): Promise<() => Promise<void>> {
  let release!: () => void;
  const until = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const done = store.withPathLocks(paths, { mode: 'wait', shared }, async () => {
    entered();
    await until;
  });
  await inside;
  return async () => {
    release();
    await done;
  };
}

t.test('exclusive path, shared ancestors', async (t) => {
  const { store } = await testStore(t);
  const release = await hold(store, ['/a/b/c']);
  t.notOk(await free(store, ['/a/b/c']), 'the path itself is taken');
  t.notOk(await free(store, ['/a/b']), 'a folder above it cannot be renamed meanwhile');
  t.notOk(await free(store, ['/a']), 'nor any folder further up');
  t.notOk(await free(store, ['/a/b/c/d']), 'nothing under it can change (its ancestors are shared, it is exclusive)');
  t.ok(await free(store, ['/a/b/x']), 'a sibling is free (shared ancestors are compatible)');
  t.ok(await free(store, ['/a/bc']), 'a name sharing a prefix is another path');
  t.ok(await free(store, ['/z']), 'another tree is free');
  await release();
  t.ok(await free(store, ['/a/b/c']), 'released after the function');
  t.ok(await free(store, ['/a']), 'ancestors released too');
});

t.test('shared (replicators): compatible with each other, not with an exclusive holder (mounts, walks)', async (t) => {
  const { store } = await testStore(t);
  const release = await hold(store, ['/a/b/c'], true);
  t.ok(await free(store, ['/a/b/c'], true), 'a second replicator may place its own copy of the same path');
  t.notOk(await free(store, ['/a/b/c']), 'a mount cannot change the path meanwhile');
  t.notOk(await free(store, ['/a/b']), 'nor rename a folder above it');
  await release();
  const mount = await hold(store, ['/a/b']);
  t.notOk(await free(store, ['/a/b/c'], true), 'a replicator cannot place into a folder a mount is renaming');
  await mount();
  t.ok(await free(store, ['/a/b/c'], true), 'free again after the mount');
});

t.test('wait blocks until the holder is done; the function sees the holder\'s commit', async (t) => {
  const { store } = await testStore(t);
  await store.query('CREATE TABLE marks (v text)');
  const release = await hold(store, ['/x']);
  const order: string[] = [];
  const waiter = store.withPathLocks(['/y', '/x'], { mode: 'wait' }, async (db) => {
    order.push('waiter');
    return (await db.query<{ v: string }>('SELECT v FROM marks')).map((r) => r.v);
  });
  await sleep(200);
  order.push('holder done');
  await store.query(`INSERT INTO marks VALUES ('committed by the holder')`);
  await release();
  const seen = await waiter;
  t.same(order, ['holder done', 'waiter'], 'the waiter ran only after the holder');
  t.same(seen, ['committed by the holder'], 'and saw what the holder committed');
});

t.test('released when the function throws; releaseLater releases soon after', async (t) => {
  const { store } = await testStore(t);
  await t.rejects(store.withPathLocks(['/p'], { mode: 'wait' }, async () => Promise.reject(new Error('boom'))), /boom/);
  t.ok(await free(store, ['/p']), 'free after a throw');
  const v = await store.withPathLocks(['/q'], { mode: 'wait', releaseLater: true }, async () => 42);
  t.equal(v, 42);
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    ok = await free(store, ['/q']);
    if (!ok) await sleep(10);
  }
  t.ok(ok, 'free shortly after');
});

t.test('a session that dies releases its locks', async (t) => {
  const { store, url } = await testStore(t);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('SELECT geogridfs_lock_paths($1::text[])', [['/dead/holder']]);
  t.notOk(await free(store, ['/dead/holder']), 'held by the other session');
  await c.end();
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    ok = await free(store, ['/dead/holder']);
    if (!ok) await sleep(20);
  }
  t.ok(ok, 'released by the server when the session ended');
});

t.test('try takes all or nothing', async (t) => {
  const { store } = await testStore(t);
  const release = await hold(store, ['/m']);
  t.notOk(await free(store, ['/a', '/b', '/m', '/n']), 'one taken: refused');
  t.ok(await free(store, ['/a']), 'and nothing of it stayed held');
  t.ok(await free(store, ['/n']));
  await release();
});
