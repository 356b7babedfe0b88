/**
 * The README's first command: `geogridfs up` brings a whole local grid up
 * (embedded PostgreSQL, three node folders, the mount) and Ctrl-C stops
 * everything cleanly.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { BIN, childEnv } from '../helpers/cli.js';
import { isMounted } from '../../src/fs/fuse-adapter.js';
import { embeddedPaths, runningServer, stopEmbedded } from '../../src/embedded/server.js';
import { sh, sleep } from '../helpers/mount.js';

t.test('geogridfs up, use the mount, Ctrl-C', async (t) => {
  const dir = await scratchDir('up-');
  const dataDir = path.join(dir, 'data');
  const mnt = path.join(dir, 'mnt', 'combined');
  // no config.ts in cwd: defaults, data dir from the environment; the thread pool re-exec happens as for a user
  const child = spawn(BIN, ['up'], { cwd: dir, env: childEnv({ GEOGRIDFS_DATA_DIR: dataDir }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(async () => {
    child.kill('SIGKILL');
    await sh('fusermount', ['-uz', mnt]);
    await stopEmbedded(dataDir).catch(() => undefined);
  });
  for (let i = 0; i < 600 && !out.includes('Press Ctrl-C'); i++) await sleep(100);
  t.match(out, /geogridfs is up/, 'up reports the grid');
  t.ok(await isMounted(mnt), 'mounted at ./mnt/combined');
  await fs.writeFile(path.join(mnt, 'hello.txt'), 'hello grid');
  t.equal(await fs.readFile(path.join(mnt, 'hello.txt'), 'utf8'), 'hello grid', 'write and read through the mount');
  const onNodes = await Promise.all(['node1', 'node2', 'node3'].map((n) => fs.readFile(path.join(dataDir, 'nodes', n, 'hello.txt'), 'utf8').catch(() => null)));
  t.equal(onNodes.filter((x) => x === 'hello grid').length, 1, 'the bytes are on one of the three nodes');

  child.kill('SIGINT');
  const code = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
  t.equal(code, 0, 'Ctrl-C: exit code 0');
  t.match(out, /geogridfs stopped/, 'reports it stopped');
  t.notOk(await isMounted(mnt), 'unmounted');
  t.equal(await runningServer(embeddedPaths(dataDir)), null, 'the embedded PostgreSQL it started is stopped');
});
