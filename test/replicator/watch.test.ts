import t from 'tap';
import { PassThrough } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, fileExists, replicaState, sha256, type Grid } from './grid.js';
import { runCli } from '../../src/cli/main.js';
import { commitFileVersion } from '../../src/meta/files.js';

function startWatch(g: Grid, node: string): { stop: () => Promise<number>; output: () => string } {
  const ac = new AbortController();
  let out = '';
  const sink = new PassThrough();
  sink.on('data', (d: Buffer) => (out += d.toString()));
  const done = runCli(['replicator', 'watch', '--interval', '60', '-c', g.configs[node]!], { stdout: sink, stderr: sink, env: process.env, cwd: g.dir, signal: ac.signal });
  return {
    stop: async () => {
      ac.abort();
      return done;
    },
    output: () => out,
  };
}

async function until(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

t.test('watch: copies follow within seconds (NOTIFY), files placed by hand are registered, survives lost connections', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const w1 = startWatch(g, 'n1');
  const w2 = startWatch(g, 'n2');
  t.teardown(async () => {
    await w1.stop();
    await w2.stop();
  });
  await until('both heartbeats', async () => (await g.store.query('SELECT 1 FROM nodes WHERE heartbeat_at IS NOT NULL')).length === 2);

  // a file written through the mount on n1: bytes on n1, one committed version
  const n1 = await g.nodeId('n1');
  const addViaMount = async (name: string, content: string) => {
    await writeFile(path.join(g.roots.n1!, name), content);
    await g.store.txn((tx) =>
      commitFileVersion(tx, {
        path: `/${name}`, size: Buffer.byteLength(content), checksum: sha256(content), mode: 0o644, uid: 0, gid: 0,
        mtimeUs: Date.now() * 1000, classification: { class: 'default', replicaTarget: 2, backupTarget: 0 }, nodeId: n1,
      }),
    );
  };
  const t0 = Date.now();
  await addViaMount('hello.txt', 'hello grid');
  await until('second copy of hello.txt', async () => (await replicaState(g.store)).find((s) => s.path === '/hello.txt')?.nodes.length === 2);
  t.ok(await fileExists(path.join(g.roots.n2!, 'hello.txt')), `copied to n2 in ${Date.now() - t0} ms`);

  // a file put on n2 by hand: the file watcher walks it, n1 then copies it
  await writeFile(path.join(g.roots.n2!, 'by hand.txt'), 'placed by hand');
  await until('by hand.txt registered and copied', async () => (await replicaState(g.store)).find((s) => s.path === '/by hand.txt')?.nodes.length === 2);
  t.ok(await fileExists(path.join(g.roots.n1!, 'by hand.txt')));

  // every connection of the daemons is cut (as by a database restart): they reconnect and carry on
  const cut = await g.store.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND (application_name LIKE 'geogridfs-replicator%' OR application_name = 'geogridfs-listen')`,
  );
  t.ok(cut.length >= 4, `cut ${cut.length} connections of the daemons (pools and LISTEN)`);
  await new Promise((r) => setTimeout(r, 500));
  await addViaMount('after.txt', 'after the restart');
  await until('second copy of after.txt', async () => (await replicaState(g.store)).find((s) => s.path === '/after.txt')?.nodes.length === 2, 30_000);
  t.pass('replication continued after the connections were lost');

  t.equal(await w1.stop(), 0);
  t.equal(await w2.stop(), 0);
});
