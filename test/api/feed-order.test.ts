/**
 * The change feed never lets a cursor pass a change that is still being
 * committed: seq values are taken before commit, so a transaction holding a
 * lower seq may commit after one with a higher seq. The feed stops before
 * rows a running transaction could still precede (settled: false).
 */
import t from 'tap';
import { testStore } from '../helpers/db.js';
import { feedAfter } from '../../src/meta/feed.js';
import { commitFileVersion } from '../../src/meta/files.js';
import { ensureNodes } from '../../src/meta/nodes.js';

t.test('a change committed late is not skipped', async (t) => {
  const { store } = await testStore(t);
  const [node] = await ensureNodes(store, ['n1']);
  const put = (db: Parameters<typeof commitFileVersion>[0], p: string) =>
    commitFileVersion(db, { path: p, size: 1, checksum: 'a'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: { class: 'default', replicaTarget: 1, backupTarget: 1 }, nodeId: node!.id });
  await put(store, '/first');
  const start = await feedAfter(store, 0, 100);
  t.equal(start.items.length, 1);
  const cursor = start.next;

  // a slow writer takes the next seq and keeps its transaction open
  const slow = await store.pool.connect();
  await slow.query('BEGIN');
  await put({ query: async (sql, params) => (await slow.query(sql, params as unknown[])).rows }, '/slow');
  // a fast writer takes a later seq and commits
  await put(store, '/fast');
  const during = await feedAfter(store, cursor, 100);
  t.same(during.items.map((i) => i.path), [], 'the committed later change waits behind the open one');
  t.equal(during.settled, false);
  t.equal(during.next, cursor, 'the cursor does not move');

  await slow.query('COMMIT');
  slow.release();
  const after = await feedAfter(store, cursor, 100);
  t.same(after.items.map((i) => i.path), ['/slow', '/fast'], 'both, in seq order');
  t.equal(after.settled, true);
});
