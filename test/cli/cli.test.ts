import t from 'tap';
import { testStore, scratchDir, writeConfig } from '../helpers/db.js';
import { cli } from '../helpers/cli.js';
import { commitFileVersion, getFile } from '../../src/meta/files.js';
import { getNode } from '../../src/meta/nodes.js';

t.test('CLI commands end to end against a real database', async (t) => {
  const { store, url } = await testStore(t);
  const dir = await scratchDir('cli-');
  const config = await writeConfig(dir, { database: { url }, dataDir: dir, classes: [{ name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 }] });
  const run = (...args: string[]) => cli(['--config', config, ...args]);

  let r = await run('db', 'migrate');
  t.equal(r.code, 0);
  t.match(r.stdout, /schema is up to date/);

  r = await run('node', 'add', 'node1');
  t.equal(r.code, 0, r.stderr);
  r = await run('node', 'add', 'node2', '--state', 'readonly');
  t.equal(r.code, 0, r.stderr);
  r = await run('node', 'add', 'node1');
  t.equal(r.code, 1, 'duplicate node is a failure');
  t.match(r.stderr, /node "node1" already exists/);
  r = await run('node', 'add', 'bad/name');
  t.equal(r.code, 2, 'invalid name is a usage error');

  r = await run('node', 'set-state', 'node1', 'drain');
  t.equal(r.code, 0);
  t.equal((await getNode(store, 'node1'))!.state, 'drain');
  r = await run('node', 'set-state', 'node1', 'sleeping');
  t.equal(r.code, 2, 'bad state rejected by the parser');
  r = await run('node', 'set-state', 'ghost', 'active');
  t.equal(r.code, 1);
  t.match(r.stderr, /no node named "ghost"/);

  r = await run('node', 'list', '--json');
  const nodes = JSON.parse(r.stdout) as { name: string; state: string }[];
  t.same(nodes.map((n) => [n.name, n.state]), [['node1', 'drain'], ['node2', 'readonly']]);

  r = await run('backup-node', 'add', 'off1', '--bytes-per-sec', '1000000', '--hours', '0-6');
  t.equal(r.code, 0, r.stderr);
  const token = /\n(ggfs_[0-9a-f]{16}_[A-Za-z0-9_-]{43})/.exec(r.stdout)?.[1];
  t.ok(token, 'token printed once');
  const dump = await store.query<{ d: string }>('SELECT row_to_json(b)::text AS d FROM backup_nodes b');
  t.notMatch(dump[0]!.d, token!.split('_')[2]!, 'token secret not stored in clear');
  r = await run('backup-node', 'list');
  t.notMatch(r.stdout, token!.split('_')[2]!, 'list never shows the token');
  t.match(r.stdout, /off1\s+yes/);
  r = await run('backup-node', 'revoke', 'off1');
  t.equal(r.code, 0);
  r = await run('backup-node', 'list', '--json');
  t.equal((JSON.parse(r.stdout) as { active: boolean }[])[0]!.active, false);
  r = await run('backup-node', 'add', 'off2', '--hours', '25-3');
  t.equal(r.code, 2, 'bad hours is a usage error');

  // status --json reflects the files and their compliance
  const n1 = (await getNode(store, 'node1'))!;
  await store.txn((tx) =>
    commitFileVersion(tx, { path: '/photos/a.jpg', size: 10, checksum: 'a'.repeat(64), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1, classification: { class: 'default', replicaTarget: 2, backupTarget: 1 }, nodeId: n1.id }),
  );
  await run('node', 'set-state', 'node1', 'active');
  r = await run('status', '--json');
  t.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { files: number; under: number; nodes: { name: string; files: number }[] };
  t.equal(s.files, 1);
  t.equal(s.under, 1, 'one copy of a 2-copy class is under target');
  t.equal(s.nodes.find((n) => n.name === 'node1')!.files, 1);
  r = await run('status');
  t.match(r.stdout, /node1\s+active/);
  t.notMatch(r.stdout + r.stderr, /password|:\/\/geogridfs:[^*]/i, 'no secrets in status');

  // classes apply: change the patterns, re-classify
  const config2 = await writeConfig(dir, {
    database: { url },
    dataDir: dir,
    classes: [
      { name: 'originals', pattern: 'photos/**', replicaTarget: 3, backupTarget: 2 },
      { name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 },
    ],
  });
  r = await cli(['--config', config2, 'classes', 'apply', '--dry-run']);
  t.match(r.stdout, /would change 1 of 1/);
  t.equal((await getFile(store, '/photos/a.jpg'))!.replicaTarget, 2, 'dry run changes nothing');
  r = await cli(['--config', config2, 'classes', 'apply']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /changed 1 of 1 file\(s\) \(originals: 1\)/);
  const f = await getFile(store, '/photos/a.jpg');
  t.same([f!.class, f!.replicaTarget, f!.backupTarget], ['originals', 3, 2]);

  // remove: refused while node1 holds the only copy
  r = await run('node', 'remove', 'node1');
  t.equal(r.code, 1);
  t.match(r.stderr, /only copy/);
  r = await run('node', 'remove', 'node2');
  t.equal(r.code, 0, r.stderr);
});

t.test('usage and config errors: exit codes and messages', async (t) => {
  let r = await cli(['no-such-command']);
  t.equal(r.code, 2);
  r = await cli([]);
  t.equal(r.code, 2);
  r = await cli(['node', 'add']);
  t.equal(r.code, 2);
  r = await cli(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /db <command>/);
  r = await cli(['node', 'add', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Examples:/, 'every command has examples');
  const dir = await scratchDir('cli-bad-');
  const bad = await writeConfig(dir, { database: { url: 'postgresql://u:TOPSECRET@127.0.0.1:1/x' }, nodez: {} });
  r = await cli(['--config', bad, 'status']);
  t.equal(r.code, 1);
  t.match(r.stderr, /nodez: unknown key/);
  t.notMatch(r.stderr, /TOPSECRET/);
  const unreachable = await writeConfig(dir, { database: { url: 'postgresql://u:TOPSECRET@127.0.0.1:1/x' } });
  r = await cli(['--config', unreachable, 'status']);
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot reach PostgreSQL at postgresql:\/\/u:\*\*\*@127\.0\.0\.1:1\/x/);
  t.notMatch(r.stderr, /TOPSECRET/, 'password never printed');
});
