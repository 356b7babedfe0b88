import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, fileExists, listTree, sha256 } from './grid.js';
import { BIN, childEnv } from '../helpers/cli.js';

t.test('kill -9 in the middle of a copy leaves no partial file and no replica; the next run completes it', async (t) => {
  // 4 MiB/s copy pace so that a 12 MiB copy takes ~3 s: time to kill it
  const g = await makeGrid(t, { nodes: ['n1', 'n2'], replicator: { copyBytesPerSec: 4 * 2 ** 20 } });
  const big = randomBytes(12 * 2 ** 20);
  await writeTree(g.roots.n1!, { 'big/large file.bin': big });
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);

  const child = spawn(BIN, ['replicator', 'replicate', '-c', g.configs.n2!], { env: childEnv(), cwd: g.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ? -1 : code)));
  const dir = path.join(g.roots.n2!, 'big');
  const tempDir = path.join(g.roots.n2!, '.ggfs-tmp');
  let temp: string | null = null;
  const deadline = Date.now() + 30_000;
  while (!temp && Date.now() < deadline) {
    const names = await readdir(tempDir).catch(() => [] as string[]);
    temp = names.find((n) => n.startsWith('replica-')) ?? null;
    if (!temp) await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(temp, 'the copy started (temp file in the node root\'s .ggfs-tmp folder)', { output });
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGKILL');
  t.equal(await exited, -1, 'killed');

  t.notOk(await fileExists(path.join(dir, 'large file.bin')), 'no partial file at the destination');
  t.notOk(await fileExists(dir), 'no folder made for it yet (folders are made when a verified copy is placed)');
  const n2 = await g.nodeId('n2');
  const rows = await g.store.query('SELECT 1 FROM replicas WHERE node_id = $1', [n2]);
  t.equal(rows.length, 0, 'no replica recorded');

  const again = await g.run('n2', ['replicator', 'replicate']);
  t.equal(again.code, 0, again.stdout + again.stderr);
  t.match(again.stdout, /1 copied/);
  t.same(await listTree(g.roots.n2!), { '/big/large file.bin': sha256(big) }, 'complete, verified, and the temp file is gone');
  t.same(await readdir(tempDir), [], 'the killed run\'s temp file was removed');
  t.equal((await g.store.query('SELECT 1 FROM replicas WHERE node_id = $1', [n2])).length, 1, 'replica recorded');
  t.equal((await g.store.query('SELECT 1 FROM copy_claims')).length, 0, 'no claim left');
});
