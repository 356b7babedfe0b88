import t from 'tap';
import { testStore } from '../helpers/db.js';
import { migrate, migrationStatus, listMigrations } from '../../src/meta/migrate.js';
import { addNode, setNodeState, removeNode, getNode } from '../../src/meta/nodes.js';
import { commitFileVersion, getFile, ensureFolder, lookup, listFolder } from '../../src/meta/files.js';
import { addBackupNode } from '../../src/meta/backup-nodes.js';

const H = 'a'.repeat(64);
const cls = { class: 'default', replicaTarget: 2, backupTarget: 1 };

t.test('migrations apply to an empty database and re-apply as a no-op', async (t) => {
  const { store } = await testStore(t);
  const s = await migrationStatus(store);
  t.equal(s.pending.length, 0);
  t.equal(s.dbVersion, (await listMigrations()).length);
  t.same(await migrate(store), [], 'second run applies nothing');
  const root = await store.query<{ path: string }>('SELECT path FROM folders WHERE parent_id IS NULL');
  t.same(root.map((r) => r.path), ['/']);
});

t.test('a database newer than the code is refused', async (t) => {
  const { store } = await testStore(t);
  await store.query(`INSERT INTO schema_migrations (version, name, sha256) VALUES (999, '0999_future', 'x')`);
  await t.rejects(migrate(store), { code: 'DB_SCHEMA_NEWER' });
});

t.test('constraints reject invalid rows', async (t) => {
  const { store } = await testStore(t);
  const n1 = await addNode(store, 'n1');
  await t.rejects(store.query(`INSERT INTO nodes (name, state) VALUES ('n2', 'sleeping')`), { code: '23514' }, 'bad node state');
  await t.rejects(store.query(`INSERT INTO nodes (name) VALUES ('bad name')`), { code: '23514' }, 'bad node name');
  const base = `INSERT INTO files (path, folder_id, size, checksum, atime_us, mtime_us, ctime_us, class, replica_target, backup_target)`;
  await t.rejects(store.query(`${base} VALUES ('/x', 1, -1, $1, 0, 0, 0, 'd', 1, 0)`, [H]), { code: '23514' }, 'negative size');
  await t.rejects(store.query(`${base} VALUES ('/x/../y', 1, 0, $1, 0, 0, 0, 'd', 1, 0)`, [H]), { code: '23514' }, 'path with ..');
  await t.rejects(store.query(`${base} VALUES ('/x', 1, 0, 'nothex', 0, 0, 0, 'd', 1, 0)`), { code: '23514' }, 'bad checksum');
  await t.rejects(store.query(`${base} VALUES ('/x', 1, 0, $1, 0, 0, 0, 'd', 0, 0)`, [H]), { code: '23514' }, 'replica target 0');
  await store.query(`${base} VALUES ('/x', 1, 5, $1, 0, 0, 0, 'd', 1, 0)`, [H]);
  await t.rejects(store.query(`${base} VALUES ('/x', 1, 5, $1, 0, 0, 0, 'd', 1, 0)`, [H]), { code: '23505' }, 'duplicate live path');
  const f = await getFile(store, '/x');
  await t.rejects(store.query(`INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, 9999, 1, '/x')`, [f!.id]), { code: '23503' }, 'replica of a missing node');
  await store.query(`INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, '/x')`, [f!.id, n1.id]);
  await t.rejects(store.query(`DELETE FROM nodes WHERE id = $1`, [n1.id]), { code: '23001' }, 'node with replicas cannot vanish');
  await t.rejects(store.query(`UPDATE files SET deleted_at = now() WHERE id = $1`, [f!.id]), { code: '23514' }, 'tombstone must drop its folder');
  await t.rejects(store.query(`INSERT INTO backup_nodes (name, token_id, token_hash) VALUES ('b', 'zz', '\\x00')`), { code: '23514' }, 'bad token columns');
  t.equal(f!.size, 5, 'size is a number (bigint parsed)');
});

t.test('sizes beyond 4 GiB and sub-second times round-trip', async (t) => {
  const { store } = await testStore(t);
  const n = await addNode(store, 'n1');
  const mtimeUs = 1_700_000_000_123_456;
  await store.txn((tx) => commitFileVersion(tx, { path: '/big/file.bin', size: 5 * 2 ** 40, checksum: H, mode: 0o640, uid: 1000, gid: 100, mtimeUs, classification: cls, nodeId: n.id }));
  const f = await getFile(store, '/big/file.bin');
  t.equal(f!.size, 5 * 2 ** 40);
  t.equal(f!.mtimeUs, mtimeUs);
  t.equal(f!.mode, 0o640);
  const e = await lookup(store, '/big');
  t.equal(e?.type, 'folder', 'parent folder created');
});

t.test('the change sequence increases on insert, update, rename and delete', async (t) => {
  const { store } = await testStore(t);
  const n = await addNode(store, 'n1');
  const seqOf = async (p: string) => (await store.query<{ seq: number }>('SELECT max(seq) AS seq FROM files WHERE path = $1', [p]))[0]!.seq;
  await store.txn((tx) => commitFileVersion(tx, { path: '/a', size: 1, checksum: H, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: n.id }));
  const s1 = await seqOf('/a');
  const r = await store.txn((tx) => commitFileVersion(tx, { path: '/a', size: 2, checksum: 'b'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 2, classification: cls, nodeId: n.id }));
  t.equal(r.file.version, 2, 'content change bumps version');
  const s2 = await seqOf('/a');
  t.ok(s2 > s1, 'update takes a new seq');
  await store.query(`UPDATE files SET path = '/b' WHERE path = '/a'`);
  const s3 = await seqOf('/b');
  t.ok(s3 > s2, 'rename takes a new seq');
  await store.query(`UPDATE files SET deleted_at = now(), folder_id = NULL WHERE path = '/b'`);
  const s4 = await seqOf('/b');
  t.ok(s4 > s3, 'delete (tombstone) takes a new seq');
  const folderSeq1 = (await ensureFolder(store, '/d')).seq;
  await store.query(`UPDATE folders SET mode = 448 WHERE path = '/d'`);
  const folderSeq2 = (await store.query<{ seq: number }>(`SELECT seq FROM folders WHERE path = '/d'`))[0]!.seq;
  t.ok(folderSeq2 > folderSeq1 && folderSeq1 > s4, 'folders share the one sequence');
});

t.test('replica counts are derived, stale replicas do not count', async (t) => {
  const { store } = await testStore(t);
  const a = await addNode(store, 'a');
  const b = await addNode(store, 'b');
  const v = { path: '/f', size: 1, checksum: H, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls };
  const { file } = await store.txn((tx) => commitFileVersion(tx, { ...v, nodeId: a.id }));
  await store.query('INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, $3)', [file.id, b.id, '/f']);
  const count = async () => (await store.query<{ n: number }>('SELECT current_replicas AS n FROM file_replica_counts WHERE file_id = $1', [file.id]))[0]!.n;
  t.equal(Number(await count()), 2);
  await store.txn((tx) => commitFileVersion(tx, { ...v, checksum: 'c'.repeat(64), nodeId: a.id }));
  t.equal(Number(await count()), 1, 'b is stale after a new version');
  const q = await store.query('SELECT reason FROM replication_queue WHERE file_id = $1', [file.id]);
  t.equal(q.length, 1, 'the changed file is queued for replication');
  await setNodeState(store, 'a', 'dead');
  t.equal(Number(await count()), 0, 'a dead node does not count');
  const listing = await listFolder(store, 1);
  t.same(listing.files.map((f) => f.path), ['/f']);
});

t.test('a node holding the only copy of a file cannot be removed', async (t) => {
  const { store } = await testStore(t);
  const a = await addNode(store, 'a');
  await addNode(store, 'b');
  await store.txn((tx) => commitFileVersion(tx, { path: '/only', size: 1, checksum: H, mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: cls, nodeId: a.id }));
  await t.rejects(store.txn((tx) => removeNode(tx, 'a')), { code: 'UNSAFE', message: /only copy of 1 file.*\/only/ });
  await store.txn((tx) => removeNode(tx, 'b'));
  t.equal(await getNode(store, 'b'), null);
});

t.test('backup tokens are stored hashed', async (t) => {
  const { store } = await testStore(t);
  const { token } = await addBackupNode(store, 'off1');
  // ggfs_<id>_<secret>; the secret is base64url and may itself contain '_'
  const secret = token.split('_').slice(2).join('_');
  t.ok(secret.length >= 20, 'the token carries a long secret');
  const rows = await store.query<{ dump: string }>(`SELECT row_to_json(b)::text AS dump FROM backup_nodes b`);
  t.notMatch(rows[0]!.dump, secret, 'secret not stored in clear');
  t.notMatch(rows[0]!.dump, Buffer.from(secret).toString('hex'), 'nor as hex');
});

t.test('heartbeat records space and liveness', async (t) => {
  const { store } = await testStore(t);
  await addNode(store, 'hb');
  const { heartbeat } = await import('../../src/meta/nodes.js');
  await heartbeat(store, 'hb', 1000, 400);
  let n = await getNode(store, 'hb');
  t.same([n!.capacityBytes, n!.freeBytes], [1000, 400]);
  t.ok(n!.heartbeatAt, 'heartbeat time set');
  await heartbeat(store, 'hb', 1000, 5000);
  n = await getNode(store, 'hb');
  t.equal(n!.freeBytes, 1000, 'free never above capacity');
});
