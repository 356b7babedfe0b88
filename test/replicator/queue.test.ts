import t from 'tap';
import { testStore } from '../helpers/db.js';
import { ensureNodes } from '../../src/meta/nodes.js';
import { commitFileVersion } from '../../src/meta/files.js';
import { dueWork, removeQueued, claimCopies, recordCopies } from '../../src/meta/queue.js';
import { deleteReplica } from '../../src/meta/replicas.js';

const cls = { class: 'default', replicaTarget: 2, backupTarget: 0 };
const sum = 'a'.repeat(64);

t.test('a queue entry refreshed after it was read is not removed as done (lost replica, new version)', async (t) => {
  const { store } = await testStore(t);
  const [n1, n2] = await ensureNodes(store, ['n1', 'n2']);
  const f = await store.txn((tx) => commitFileVersion(tx, { path: '/x', size: 1, checksum: sum, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  await store.query('INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, $3)', [f.file.id, n2!.id, '/x']);
  const read = await dueWork(store, null, 10);
  t.equal(read.length, 1);
  await new Promise((r) => setTimeout(r, 5));
  await deleteReplica(store, f.file.id, n2!.id); // after the read: the file needs a look again
  await removeQueued(store, read);
  t.equal((await dueWork(store, null, 10)).length, 1, 'still queued');
  const again = await dueWork(store, null, 10);
  await removeQueued(store, again);
  t.equal((await dueWork(store, null, 10)).length, 0, 'removed when unchanged');
});

t.test('batch claims keep racing nodes at the target; records release the claims', async (t) => {
  const { store } = await testStore(t);
  const [n1, n2, n3] = await ensureNodes(store, ['n1', 'n2', 'n3']);
  const f = await store.txn((tx) => commitFileVersion(tx, { path: '/y', size: 1, checksum: sum, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n1!.id }));
  const want = [{ fileId: f.file.id, version: 1 }];
  const [a, b] = await Promise.all([claimCopies(store, want, n2!.id, 'h2', 60), claimCopies(store, want, n3!.id, 'h3', 60)]);
  t.equal(a.size + b.size, 1, 'target 2 with one copy: only one of two racing nodes may copy');
  const winner = a.size ? n2! : n3!;
  await recordCopies(store, winner.id, a.size ? 'h2' : 'h3', [{ fileId: f.file.id, version: 1, nodePath: '/y' }]);
  t.equal((await store.query('SELECT 1 FROM copy_claims')).length, 0);
  const loser = a.size ? n3! : n2!;
  t.equal((await claimCopies(store, want, loser.id, 'hx', 60)).size, 0, 'at target: nothing to claim');
});
