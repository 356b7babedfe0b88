import t from 'tap';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sampleTree, writeTree, listTree, replicaState, sha256, settle, assertDisksMatchMetadata } from './grid.js';
import { writeConfig } from '../helpers/db.js';

t.test('replicate: every file reaches its target across 4 nodes, concurrently, without over-replication', async (t) => {
  const classes = [
    { name: 'triple', pattern: 'big/**', replicaTarget: 3, backupTarget: 0 },
    { name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 0 },
  ];
  const g = await makeGrid(t, { nodes: ['n1', 'n2', 'n3', 'n4'], classes });
  const tree = sampleTree(4 * 2 ** 20);
  for (let i = 0; i < 30; i++) tree[`bulk/file-${i}.dat`] = `content ${i} `.repeat(i * 50);
  await writeTree(g.roots.n1!, tree);
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);

  // an overlapping run on the same node exits at once, quietly, doing nothing
  const held = await g.store.tryAdvisoryLock('geogridfs:replicator:n2');
  t.ok(held);
  const blocked = await g.run('n2', ['replicator', 'replicate']);
  t.equal(blocked.code, 0);
  t.equal(blocked.stdout + blocked.stderr, '', 'quiet');
  await held!();
  t.same(await listTree(g.roots.n2!), {}, 'it copied nothing');

  // first round: all four nodes at once plus a second, overlapping run on n2 and n3
  const first = await Promise.all([
    ...['n1', 'n2', 'n3', 'n4'].map((n) => g.run(n, ['replicator', 'replicate'])),
    g.run('n2', ['replicator', 'replicate']),
    g.run('n3', ['replicator', 'replicate']),
  ]);
  for (const r of first) t.equal(r.code, 0, r.stdout + r.stderr);
  await settle(g, ['n1', 'n2', 'n3', 'n4']);

  const state = await replicaState(g.store);
  t.equal(state.length, Object.keys(tree).length);
  for (const s of state) t.equal(s.nodes.length, s.target, `${s.path}: ${s.nodes.join(',')} (target ${s.target})`);
  const over = await g.store.query('SELECT 1 FROM over_replicated');
  t.equal(over.length, 0, 'nothing over-replicated');
  await assertDisksMatchMetadata(t, g);
  const perNode = Object.fromEntries(Object.keys(g.roots).map((n) => [n, state.filter((s) => s.nodes.includes(n)).length]));
  t.ok(Object.values(perNode).filter((c) => c > 0).length >= 3, `copies spread over nodes: ${JSON.stringify(perNode)}`);

  // mode and mtime kept
  const big = state.find((s) => s.path === '/big/large.bin')!;
  const src = await stat(path.join(g.roots.n1!, 'big/large.bin'));
  for (const n of big.nodes) {
    const st = await stat(path.join(g.roots[n]!, 'big/large.bin'));
    t.equal(st.mode, src.mode, `mode on ${n}`);
    t.equal(Math.round(st.mtimeMs), Math.round(src.mtimeMs), `mtime on ${n}`);
  }
  const heartbeats = await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM nodes WHERE heartbeat_at IS NOT NULL AND capacity_bytes > 0');
  t.equal(heartbeats[0]!.n, 4, 'every node wrote its heartbeat');

  // raise the default target: more copies; lower it: reported, and trimmed only when asked (--trim, or replicator.trimSurplus)
  const reconfigure = async (target: number, trimSurplus?: boolean) => {
    for (const n of Object.keys(g.roots)) {
      await writeConfig(path.dirname(g.configs[n]!), {
        database: { url: g.url }, dataDir: path.join(g.dir, 'data'), nodes: g.roots, host: { node: n },
        classes: [classes[0], { ...classes[1], replicaTarget: target }], replicator: { minFreeBytes: 0, concurrency: 3, ...(trimSurplus === undefined ? {} : { trimSurplus }) }, log: { level: 'warn', format: 'json' },
      });
    }
    t.equal((await g.run('n1', ['classes', 'apply'])).code, 0);
  };
  await reconfigure(3);
  await settle(g, ['n1', 'n2', 'n3', 'n4']);
  for (const s of await replicaState(g.store)) t.equal(s.nodes.length, 3, `raised: ${s.path}`);

  await reconfigure(1);
  await settle(g, ['n1', 'n2', 'n3', 'n4']);
  const lowered = await replicaState(g.store);
  t.ok(lowered.filter((s) => s.target === 1).every((s) => s.nodes.length === 3), 'lowered target, by default: extra copies kept until asked');
  const reported = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM over_replicated'))[0]!.n;
  t.equal(reported, lowered.filter((s) => s.target === 1).length, 'over-replication reported');
  await settle(g, ['n1', 'n2', 'n3', 'n4'], ['--trim']);
  for (const s of await replicaState(g.store)) t.equal(s.nodes.length, s.target, `trimmed: ${s.path}`);
  // back to 3 copies, then lowered with replicator.trimSurplus: true: trimmed by every run
  await reconfigure(3);
  await settle(g, ['n1', 'n2', 'n3', 'n4']);
  await reconfigure(1, true);
  await settle(g, ['n1', 'n2', 'n3', 'n4']);
  for (const s of await replicaState(g.store)) t.equal(s.nodes.length, s.target, `trimmed with trimSurplus: true: ${s.path}`);
  t.equal((await g.store.query('SELECT 1 FROM over_replicated')).length, 0);
  await assertDisksMatchMetadata(t, g);

  const fsck = await g.run('n1', ['fsck', '--checksums', '--orphans']);
  t.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  t.match(fsck.stdout, /clean/);
  void sha256;
});
