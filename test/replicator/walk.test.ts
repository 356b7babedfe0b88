import t from 'tap';
import { readFile, writeFile, stat, rename, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sampleTree, writeTree, sha256, replicaState } from './grid.js';

t.test('walk registers a tree; a second walk is a no-op; a second node adds replicas; a mismatch is a problem, untouched', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const tree = sampleTree();
  await writeTree(g.roots.n1!, tree);
  await writeFile(path.join(g.roots.n1!, '.ggfs-part-leftover'), 'temp file of a killed copy');

  const r1 = await g.run('n1', ['replicator', 'walk']);
  t.equal(r1.code, 0, r1.stderr + r1.stdout);
  t.match(r1.stdout, /10 files, 10 registered, 0 replicas added, 0 unchanged, 0 mismatches/);

  const files = await g.store.query<{ path: string; size: number; checksum: string; mode: number; mtime_us: number }>(
    `SELECT path, size, checksum, mode, mtime_us FROM files WHERE deleted_at IS NULL ORDER BY path`,
  );
  t.same(files.map((f) => f.path).sort(), Object.keys(tree).map((k) => '/' + k).sort(), 'every file registered under its virtual path, no temp file');
  for (const f of files) {
    const content = tree[f.path.slice(1)]!;
    t.equal(f.checksum, sha256(content), `checksum of ${f.path}`);
    t.equal(f.size, Buffer.byteLength(content), `size of ${f.path}`);
    const st = await stat(path.join(g.roots.n1!, f.path), { bigint: true });
    t.equal(f.mtime_us, Number(st.mtimeNs / 1000n), `mtime of ${f.path}`);
    t.equal(f.mode, Number(st.mode) & 0o7777);
  }
  const folders = await g.store.query<{ path: string }>('SELECT path FROM folders ORDER BY path');
  t.ok(folders.some((f) => f.path === '/dir one/nested/deeper'), 'nested folders registered');
  const state = await replicaState(g.store);
  t.ok(state.every((s) => s.nodes.join() === 'n1'), 'n1 holds every file');

  const seq1 = (await g.store.query<{ m: number }>('SELECT max(seq) AS m FROM files'))[0]!.m;
  const r2 = await g.run('n1', ['replicator', 'walk']);
  t.equal(r2.code, 0);
  t.match(r2.stdout, /10 files, 0 registered, 0 replicas added, 10 unchanged/, 'second walk changes nothing');
  t.match(r2.stdout, /hashed 0 files/, 'and hashes nothing');
  const seq2 = (await g.store.query<{ m: number }>('SELECT max(seq) AS m FROM files'))[0]!.m;
  t.equal(seq2, seq1, 'no file row was touched');

  // node 2 holds the same files (copied by hand), plus one that differs
  const tree2 = { ...tree, 'a.txt': 'ALPHA, changed\n' };
  await writeTree(g.roots.n2!, tree2);
  const r3 = await g.run('n2', ['replicator', 'walk']);
  t.equal(r3.code, 0, r3.stderr);
  t.match(r3.stdout, /10 files, 0 registered, 9 replicas added, 0 unchanged, 1 mismatches/);
  const after = await replicaState(g.store);
  for (const s of after) t.same(s.nodes, s.path === '/a.txt' ? ['n1'] : ['n1', 'n2'], `replicas of ${s.path}`);
  const problems = await g.store.query<{ kind: string; path: string }>(`SELECT kind, path FROM problems WHERE resolved_at IS NULL`);
  t.same(problems, [{ kind: 'size-mismatch', path: '/a.txt' }], 'the mismatch is a problem');
  t.equal(await readFile(path.join(g.roots.n2!, 'a.txt'), 'utf8'), 'ALPHA, changed\n', 'local bytes untouched');
  const a = (await g.store.query<{ checksum: string; version: number }>(`SELECT checksum, version FROM files WHERE path = '/a.txt'`))[0]!;
  t.same(a, { checksum: sha256('alpha\n'), version: 1 }, 'metadata untouched');

  // a re-run does not hash the known mismatch again
  const r4 = await g.run('n2', ['replicator', 'walk']);
  t.match(r4.stdout, /hashed 0 files/, 're-run hashes nothing (mismatch remembered)');

  // a subtree walk registers a file placed by hand later
  await writeTree(g.roots.n2!, { 'dir one/new.txt': 'new' });
  const r5 = await g.run('n2', ['replicator', 'walk', '-p', '/dir one']);
  t.match(r5.stdout, /1 registered/);

  // n2's storage "not mounted": an empty folder in its place. Nothing may be forgotten or deleted there.
  const held = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM replicas WHERE node_id = $1', [await g.nodeId('n2')]))[0]!.n;
  await rename(g.roots.n2!, g.roots.n2! + '.real');
  await mkdir(g.roots.n2!);
  for (const cmd of [['scrub'], ['replicate'], ['walk']]) {
    const r = await g.run('n2', ['replicator', ...cmd]);
    t.equal(r.code, 1, `${cmd[0]} refuses`);
    t.match(r.stderr, /is its storage \(NFS\) mounted/);
  }
  const stillHeld = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM replicas WHERE node_id = $1', [await g.nodeId('n2')]))[0]!.n;
  t.equal(stillHeld, held, 'no replica forgotten');
  await rm(g.roots.n2!, { recursive: true });
  await rename(g.roots.n2! + '.real', g.roots.n2!);
  t.equal((await g.run('n2', ['replicator', 'scrub'])).code, 0, 'mounted again: fine');
  await writeFile(path.join(g.roots.n2!, '.ggfs-node'), 'n1\n');
  const wrong = await g.run('n2', ['replicator', 'replicate']);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /belongs to node "n1"/, 'a folder marked for another node is refused');
  await writeFile(path.join(g.roots.n2!, '.ggfs-node'), 'n2\n');
});
