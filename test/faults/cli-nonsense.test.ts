/**
 * The CLI and config.ts given nonsense: a clear message (naming the key or
 * argument), exit code 1 or 2, never a stack trace; arguments fuzzed with
 * fast-check. Secrets: the database password and backup tokens never appear
 * in status output or error messages. The API runs as an unprivileged user
 * (nobody, through runuser) with a config it can read.
 */
import t from 'tap';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BIN, childEnv, cliProcess } from '../helpers/cli.js';
import { scratchDir, testStore, writeConfig } from '../helpers/db.js';
import { ensureNodes } from '../../src/meta/nodes.js';
import { commitFileVersion } from '../../src/meta/files.js';
import { FULL, figures, freePort, sha256, sleep } from './lib.js';

const STACK = /\n\s+at .+:\d+:\d+|unexpected error/;

t.test('nonsense configs: a message naming the key, exit 1, no stack', async (t) => {
  const dir = await scratchDir('cli-nonsense-');
  const cases: [string, string, RegExp][] = [
    ['unknown key', `export default { nodez: {} };`, /nodez/],
    ['bad database url', `export default { database: { url: 'mysql://x' } };`, /database\.url/],
    ['relative node path', `export default { nodes: { n1: 'relative/path' } };`, /nodes\.n1/],
    ['bad node name', `export default { nodes: { 'bad name!': '/tmp/x' } };`, /nodes/],
    ['wrong type', `export default { storage: { timeoutMs: 'soon' } };`, /storage\.timeoutMs/],
    ['negative number', `export default { replicator: { concurrency: -3 } };`, /replicator\.concurrency/],
    ['overlapping nodes', `export default { nodes: { a: '/srv/x', b: '/srv/x/y' } };`, /nodes\.b|overlap/],
    ['host.node not a node', `export default { host: { node: 'ghost' } };`, /host\.node/],
    ['syntax error', `export default { nodes: { ;`, /config|syntax|expected/i],
    ['not an object', `export default 42;`, /export default an object/],
    ['throws', `throw new Error('boom from config'); export default {};`, /boom from config|config/],
    ['huge value', `export default { mount: { attrTimeoutSec: 1e308 } };`, /mount\.attrTimeoutSec/],
  ];
  const results = await Promise.all(
    cases.map(async ([name, text]) => {
      const file = path.join(dir, `${name.replace(/\W+/g, '-')}.ts`);
      await writeFile(file, text);
      return cliProcess(['status', '-c', file], { timeoutMs: 60_000 });
    }),
  );
  for (const [i, [name, , want]] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.code, 1, `${name}: exit 1`, { out: r.stdout + r.stderr });
    t.match(r.stderr, want, `${name}: the message names it`);
    t.notMatch(r.stderr, STACK, `${name}: no stack trace`);
  }
  const missing = await cliProcess(['status', '-c', path.join(dir, 'nope.ts')]);
  t.equal(missing.code, 1, 'a missing config file: exit 1');
  t.match(missing.stderr, /nope\.ts/, 'names the file');
});

t.test('nonsense arguments (fuzzed): exit 1 or 2 with a message, never a crash', async (t) => {
  const dir = await scratchDir('cli-fuzz-');
  // a valid config without a reachable database: commands must fail cleanly, fast
  const cfg = await writeConfig(dir, { dataDir: path.join(dir, 'data'), database: { url: 'postgres://u:CLIPASSWORD123@127.0.0.1:1/db', statementTimeoutMs: 1000 }, nodes: { n1: path.join(dir, 'n1') }, log: { level: 'error', format: 'json' } });
  const words = ['mount', 'up', 'db', 'migrate', 'status', 'node', 'add', 'set-state', 'remove', 'backup-node', 'revoke', 'throttle', 'replicator', 'walk', 'replicate', 'scrub', 'fsck', 'classes', 'apply', 'backup', 'doctor', '--json', '--trim', '-p', '--bytes-per-sec', '--hours', '25-99', '-1', 'NaN', '../../etc', '\u00ff\u00fe', '', '--', '--nonsense', '-x', 'n1', 'banana', '9'.repeat(30)];
  let runs = 0;
  const bad: string[] = [];
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.constantFrom(...words), fc.string({ maxLength: 12 })), { minLength: 1, maxLength: 5 }), async (args) => {
      if (args[0] === 'up' || args[0] === 'mount' || args.includes('watch') || args[0] === 'api') return true; // long-running commands: not in this fuzz
      const r = await cliProcess([...args, '-c', cfg], { timeoutMs: 30_000 });
      runs++;
      const out = r.stdout + r.stderr;
      if (![0, 1, 2].includes(r.code)) bad.push(`${JSON.stringify(args)} -> exit ${r.code}: ${out.slice(0, 300)}`);
      else if (STACK.test(r.stderr)) bad.push(`${JSON.stringify(args)} -> stack trace: ${r.stderr.slice(0, 300)}`);
      else if (r.code !== 0 && r.stderr.trim() === '') bad.push(`${JSON.stringify(args)} -> exit ${r.code} without a message`);
      if (out.includes('CLIPASSWORD123')) bad.push(`${JSON.stringify(args)} -> printed the database password`);
      return true;
    }),
    { numRuns: FULL ? 150 : 12, seed: 3 },
  );
  t.same(bad, [], 'every run ended with 0/1/2 and a message, no stack trace, no password');
  figures(t, 'cli fuzz', { runs });
});

t.test('secrets stay out of status output and errors; the API runs as nobody', async (t) => {
  const { store, url } = await testStore(t);
  const password = new URL(url).password;
  t.ok(password.length > 0, 'the test database has a password');
  const dir = await scratchDir('secrets-');
  const nodeDir = path.join(dir, 'n1');
  await mkdir(nodeDir, { recursive: true });
  await writeFile(path.join(nodeDir, 'a.txt'), 'served to nobody');
  const [n] = await ensureNodes(store, ['n1']);
  await commitFileVersion(store, { path: '/a.txt', size: 16, checksum: sha256('served to nobody'), mode: 0o644, uid: 0, gid: 0, mtimeUs: 1_600_000_000_000_000, classification: { class: 'default', replicaTarget: 1, backupTarget: 1 }, nodeId: n!.id });
  const port = await freePort();
  const cfg = await writeConfig(dir, { dataDir: path.join(dir, 'data'), database: { url }, nodes: { n1: nodeDir }, api: { port }, log: { level: 'debug', format: 'json' } });
  await chmod(cfg, 0o644);
  const add = await cliProcess(['backup-node', 'add', 'offsite1', '-c', cfg]);
  const token = /ggfs_[0-9a-f]+_[A-Za-z0-9_-]+/.exec(add.stdout)![0];
  const outputs: string[] = [];
  for (const args of [['status'], ['status', '--json'], ['db', 'status'], ['db', 'status', '--json'], ['node', 'list', '--json'], ['backup-node', 'list', '--json'], ['doctor']]) {
    const r = await cliProcess([...args, '-c', cfg]);
    outputs.push(r.stdout + r.stderr);
    t.notOk((r.stdout + r.stderr).includes(password), `${args.join(' ')}: no database password`);
    t.notOk((r.stdout + r.stderr).includes(token.slice(22)), `${args.join(' ')}: no token`);
  }
  // a wrong password: the error names the problem, not the secret
  const wrongUrl = new URL(url);
  wrongUrl.password = 'WRONGSECRET987';
  const wrongCfg = await writeConfig(path.join(dir, 'data'), { dataDir: path.join(dir, 'data'), database: { url: wrongUrl.toString() }, nodes: { n1: nodeDir } }).catch(async () => {
    await mkdir(path.join(dir, 'data'), { recursive: true });
    return writeConfig(path.join(dir, 'data'), { dataDir: path.join(dir, 'data'), database: { url: wrongUrl.toString() }, nodes: { n1: nodeDir } });
  });
  const wrong = await cliProcess(['status', '-c', wrongCfg]);
  t.equal(wrong.code, 1, 'a wrong database password: exit 1');
  t.notOk((wrong.stdout + wrong.stderr).includes('WRONGSECRET987'), 'the error does not show the password', { out: wrong.stderr });
  // a backup host with a wrong token: the error does not echo it
  const hostDir = await scratchDir('secrets-host-');
  const badToken = token.slice(0, -6) + 'ZZZZZZ';
  const hostCfg = await writeConfig(hostDir, { dataDir: path.join(hostDir, 'data'), backup: { apiUrls: [`http://127.0.0.1:${port}`], token: badToken, folder: path.join(hostDir, 'b'), minFreeBytes: 0 } });

  // the API as nobody
  const api = spawn('runuser', ['-u', 'nobody', '--', process.execPath, BIN, 'api', '-c', cfg], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  api.stdout.on('data', (d: Buffer) => (out += d.toString()));
  api.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => api.on('exit', r));
  t.teardown(async () => {
    api.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    api.kill('SIGKILL');
  });
  for (let i = 0; i < 200 && !out.includes('listening'); i++) await sleep(50);
  t.match(out, /listening/, 'the API starts as nobody', { out });
  const pid = await new Promise<string>((resolve) => {
    const ps = spawn('pgrep', ['-u', 'nobody', '-f', 'geogridfs api']);
    let s = '';
    ps.stdout.on('data', (d: Buffer) => (s += d.toString()));
    ps.on('close', () => resolve(s.trim()));
  });
  t.ok(pid.length > 0, 'it runs as user nobody');
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, 'ready (database reachable)');
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/content?path=/a.txt`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(await res.text(), 'served to nobody', 'serves content as nobody');
  const refused = await cliProcess(['backup', 'replicate', '-c', hostCfg]);
  t.equal(refused.code, 1, 'a wrong token: the agent fails');
  t.notOk((refused.stdout + refused.stderr).includes(badToken.slice(22)), 'its error does not echo the token', { out: refused.stderr });
  await sleep(300);
  t.notOk(out.includes(password), 'the API output has no database password');
  t.notOk(out.includes(token.slice(22)) || out.includes(badToken.slice(22)), 'the API output has no token');
  t.ok(outputs.length > 0);
});
