import t from 'tap';
import { scratchDir } from '../helpers/db.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { MetaStore, isConnectionError } from '../../src/meta/store.js';
import { migrate } from '../../src/meta/migrate.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('the store and its LISTEN connection survive a database restart', async (t) => {
  const dataDir = await scratchDir('dbrestart-');
  const { url, port } = await ensureEmbedded(dataDir);
  t.teardown(() => stopEmbedded(dataDir));
  const store = await MetaStore.connect(url, { poolSize: 3 });
  t.teardown(() => store.close());
  await migrate(store);

  const got: string[] = [];
  let reconnects = 0;
  let disconnects = 0;
  await store.listen('geogridfs_test', (p) => got.push(p), { onReconnect: () => reconnects++, onDisconnect: () => disconnects++ });

  t.ok(await stopEmbedded(dataDir), 'server stopped');
  const err = await store.query('SELECT 1').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err && isConnectionError(err), `a query while it is down fails with a connection error (${(err as Error)?.message})`);

  const again = await ensureEmbedded(dataDir);
  t.equal(again.port, port, 'restarted on the same port');
  // the pool hands out fresh connections; the listener reconnects with backoff
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    ok = await store.query('SELECT 1').then(
      () => true,
      () => false,
    );
    if (!ok) await sleep(100);
  }
  t.ok(ok, 'queries work again without reopening the store');
  for (let i = 0; i < 100 && reconnects === 0; i++) await sleep(100);
  t.ok(disconnects >= 1, 'the listener noticed the loss');
  t.equal(reconnects, 1, 'the listener reconnected by itself');
  await store.notify('geogridfs_test', 'after-restart');
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(50);
  t.same(got, ['after-restart'], 'notifications flow again');
});
