/**
 * The commands as a user runs them: `backup-node add` prints a token,
 * `geogridfs api` serves until SIGTERM, `backup replicate` on a "backup
 * host" (its own config, no database) pulls through it.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { testStore, scratchDir, writeConfig } from '../helpers/db.js';
import { BIN, childEnv, cliProcess } from '../helpers/cli.js';
import { ensureNodes } from '../../src/meta/nodes.js';
import { commitFileVersion } from '../../src/meta/files.js';
import { sha256 } from './grid-fixture.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

t.test('backup-node add, geogridfs api, backup replicate, SIGTERM', async (t) => {
  const { store, url } = await testStore(t);
  const dir = await scratchDir('cli-');
  const nodeDir = path.join(dir, 'node1');
  await mkdir(path.join(nodeDir, 'docs'), { recursive: true });
  await writeFile(path.join(nodeDir, 'docs/a.txt'), 'served by the API process');
  const [n] = await ensureNodes(store, ['node1']);
  await commitFileVersion(store, { path: '/docs/a.txt', size: 25, checksum: sha256('served by the API process'), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1_600_000_000_000_000, classification: { class: 'default', replicaTarget: 1, backupTarget: 1 }, nodeId: n!.id });
  const port = await freePort();
  const central = await writeConfig(dir, { dataDir: path.join(dir, 'data'), database: { url }, nodes: { node1: nodeDir }, api: { port } });

  const add = await cliProcess(['backup-node', 'add', 'offsite9', '-c', central]);
  t.equal(add.code, 0, add.stderr);
  const token = /ggfs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(add.stdout)?.[0];
  t.ok(token, 'the token is printed once');

  const api = spawn(BIN, ['api', '-c', central], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  api.stdout.on('data', (d: Buffer) => (out += d.toString()));
  api.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => api.on('exit', (code) => r(code)));
  t.teardown(() => api.kill('SIGKILL'));
  for (let i = 0; i < 200 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(out, new RegExp(`geogridfs api listening on http://127.0.0.1:${port}`));
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);

  const hostDir = await scratchDir('cli-host-');
  const folder = path.join(hostDir, 'backup');
  const hostConfig = await writeConfig(hostDir, { dataDir: path.join(hostDir, 'data'), backup: { apiUrls: [`http://127.0.0.1:${port}`], token, folder, minFreeBytes: 0 } });
  const r = await cliProcess(['backup', 'replicate', '-q', '-c', hostConfig]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^backup: 1 downloaded/);
  t.equal(await readFile(path.join(folder, 'docs/a.txt'), 'utf8'), 'served by the API process');

  const missing = await writeConfig(hostDir, { dataDir: path.join(hostDir, 'data'), backup: { folder } });
  const bad = await cliProcess(['backup', 'replicate', '-c', missing]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /backup\.apiUrls.*\n.*backup\.token/s, 'names the missing keys');

  api.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly on SIGTERM');
  t.notOk(out.includes(token!.slice(22)), 'the token is not in the API output');
});
