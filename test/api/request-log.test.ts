/**
 * The API request log stays bounded: the buffered writer trims the table to
 * api.requestLogRows, keeping the newest rows.
 */
import t from 'tap';
import { testStore } from '../helpers/db.js';
import { RequestLogger } from '../../src/api/request-logger.js';
import { silentLogger } from '../../src/util/log.js';

t.test('the request log is trimmed to its bound, newest kept', async (t) => {
  const { store } = await testStore(t);
  const rl = new RequestLogger(store, 100, silentLogger);
  for (let i = 0; i < 250; i++) rl.add({ at: new Date(), backupNodeId: null, method: 'GET', route: `/r/${i}`, status: 200, bytes: i, durationMs: 1, remote: '127.0.0.1' });
  await rl.close();
  const rows = await store.query<{ n: number; min: string }>(`SELECT count(*)::int AS n, min(bytes)::int AS min FROM api_requests`);
  t.equal(rows[0]!.n, 100);
  t.equal(Number(rows[0]!.min), 150, 'the oldest were dropped');
});
