/**
 * Found by the database-restart fault test: `geogridfs replicator watch`
 * started while PostgreSQL is down (boot order, or a restart at the wrong
 * moment) exited at once with "cannot reach PostgreSQL", although the daemon
 * is documented never to exit on a database error. Fixed: the daemon waits
 * for the database (cli/context.ts waitForDatabase, used by watch).
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { faultGrid, sleep, spawnDaemon, until, waitOutput } from '../faults/lib.js';

t.test('replicator watch started while the database is down waits for it', async (t) => {
  const dataDir = await scratchDir('watch-before-db-');
  const { url } = await ensureEmbedded(dataDir);
  t.teardown(() => stopEmbedded(dataDir));
  const g = await faultGrid(t, { nodes: 2, url });
  await stopEmbedded(dataDir);
  const w = spawnDaemon(t, 'watch n1', ['replicator', 'watch', '--interval', '2', '-c', g.nodeConfigs.n1!]);
  await sleep(4000);
  t.ok(w.alive(), 'still running while the database is down', { output: w.output().slice(-1500) });
  await ensureEmbedded(dataDir);
  t.ok(await waitOutput(w, 'replicator watching', 30_000), 'it connects once the database is up');
  await sleep(2000); // the file watcher's initial scan
  await fs.writeFile(path.join(g.nodes.n1!, 'placed-by-hand.txt'), 'hello');
  const registered = await until(async () => {
    const rows = await g.store.query(`SELECT 1 FROM files WHERE path = '/placed-by-hand.txt' AND deleted_at IS NULL`);
    return rows.length === 1;
  }, 30_000);
  t.ok(registered, 'once the database is up it works: a hand-placed file is registered', { output: w.output().slice(-1500) });
  t.ok(w.alive(), 'and it is still running');
});
