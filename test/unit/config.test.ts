import t from 'tap';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { isGeoError } from '../../src/util/errors.js';

async function dir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'ggfs-cfg-'));
}

t.test('defaults when no config file exists', async (t) => {
  const d = await dir();
  const c = await loadConfig({ cwd: d, env: { GEOGRIDFS_DATA_DIR: '/tmp/x' } });
  t.equal(c.database.url, undefined);
  t.equal(c.dataDir, '/tmp/x');
  t.equal(c.mount.placement, 'mfs');
  t.equal(c.classes.length, 1);
  t.equal(c.configFile, null);
});

t.test('a TypeScript config is compiled and validated', async (t) => {
  const d = await dir();
  await writeFile(
    path.join(d, 'config.ts'),
    `import type { ConfigInput } from './nowhere.js';
     const n: number = 3;
     const config: ConfigInput = { dataDir: 'state', nodes: { a: '/srv/a', b: '/srv/b' }, host: { node: 'a' },
       classes: [{ name: 'x', pattern: 'x/**', replicaTarget: n, backupTarget: 0 }, { name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 }] };
     export default config;`,
  );
  const c = await loadConfig({ cwd: d, env: {} });
  t.equal(c.dataDir, path.join(d, 'state'), 'dataDir relative to the config file');
  t.same(c.nodes, { a: '/srv/a', b: '/srv/b' });
  t.equal(c.classes[0]!.replicaTarget, 3);
  t.equal(c.configFile, path.join(d, 'config.ts'));
});

t.test('--config and GEOGRIDFS_CONFIG are honoured, in that order', async (t) => {
  const d = await dir();
  await writeFile(path.join(d, 'one.json'), JSON.stringify({ api: { port: 1111 } }));
  await writeFile(path.join(d, 'two.json'), JSON.stringify({ api: { port: 2222 } }));
  t.equal((await loadConfig({ cwd: d, env: { GEOGRIDFS_CONFIG: 'two.json' } })).api.port, 2222);
  t.equal((await loadConfig({ cwd: d, configPath: 'one.json', env: { GEOGRIDFS_CONFIG: 'two.json' } })).api.port, 1111);
  await t.rejects(loadConfig({ cwd: d, configPath: 'missing.ts', env: {} }), /config file not found: .*missing\.ts/);
});

t.test('errors name the bad key and never print its value', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ databse: {} }, /databse: unknown key/],
    [{ database: { url: 'mysql://u:SECRETPW@h/db' } }, /database\.url: must be a postgres:\/\/ URL/],
    [{ database: { poolSize: 'ten' } }, /database\.poolSize: /],
    [{ nodes: { 'bad name!': '/x' } }, /nodes/],
    [{ nodes: { a: 'relative/path' } }, /nodes\.a: must be an absolute path/],
    [{ nodes: { a: '/srv/a', b: '/srv/a/sub' } }, /nodes\.b: path overlaps node "a"/],
    [{ host: { node: 'ghost' } }, /host\.node: "ghost" is not a key of nodes/],
    [{ classes: [{ name: 'a', pattern: '**', replicaTarget: 0, backupTarget: 0 }] }, /classes\[0\]\.replicaTarget/],
    [{ classes: [{ name: 'a', pattern: '**', replicaTarget: 1, backupTarget: 0, extra: 1 }] }, /classes\[0\]\.extra: unknown key/],
    [{ mount: { placement: 'best' } }, /mount\.placement/],
    [{ backup: { token: 'short' } }, /backup\.token/],
    [{ api: { tls: { cert: '/a' } } }, /api\.tls\.key/],
  ];
  for (const [raw, re] of cases) {
    try {
      validateConfig(raw, '/etc/geogridfs/config.ts', {});
      t.fail(`accepted ${JSON.stringify(raw)}`);
    } catch (err) {
      t.ok(isGeoError(err, 'CONFIG_INVALID'), 'coded CONFIG_INVALID');
      t.match((err as Error).message, re);
      t.notMatch((err as Error).message, /SECRETPW|short/, 'value not printed');
    }
  }
});

t.test('a config that does not compile or exports nothing is reported', async (t) => {
  const d = await dir();
  await writeFile(path.join(d, 'config.ts'), 'export default {{{');
  await t.rejects(loadConfig({ cwd: d, env: {} }), /does not compile/);
  await writeFile(path.join(d, 'config.ts'), 'export const x = 1;');
  await t.rejects(loadConfig({ cwd: d, env: {} }), /must export default an object/);
});
