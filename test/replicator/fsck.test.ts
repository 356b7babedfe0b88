import t from 'tap';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, settle } from './grid.js';

t.test('fsck: clean grid exits 0; missing, corrupt, unknown files and unreachable nodes are reported with exit 1', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  await writeTree(g.roots.n1!, { 'a.txt': 'aaaa', 'b.txt': 'bbbb', 'c/d.txt': 'dddd' });
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);
  await settle(g, ['n1', 'n2']);
  const clean = await g.run('n1', ['fsck', '--checksums', '--orphans']);
  t.equal(clean.code, 0, clean.stdout + clean.stderr);
  t.match(clean.stdout, /3 files, 6 replicas checked.*clean/);

  await rm(path.join(g.roots.n2!, 'a.txt'));
  await writeFile(path.join(g.roots.n1!, 'b.txt'), 'BBBB');
  await writeFile(path.join(g.roots.n2!, 'stray.txt'), 'nobody knows me');
  const quick = await g.run('n1', ['fsck']);
  t.equal(quick.code, 1);
  t.match(quick.stderr, /missing\tn2\t\/a\.txt/);
  t.notMatch(quick.stderr, /corrupt/, 'without --checksums only sizes are checked');
  const full = await g.run('n1', ['fsck', '--checksums', '--orphans', '--record']);
  t.equal(full.code, 1);
  t.match(full.stderr, /corrupt\tn1\t\/b\.txt/);
  t.match(full.stderr, /orphan\tn2\t\/stray\.txt/);
  t.match(full.stdout, /1 missing, 0 wrong size, 1 corrupt, 0 under target, 0 over target, 1 unknown files.*NOT clean/);
  const kinds = (await g.store.query<{ kind: string }>('SELECT kind FROM problems WHERE resolved_at IS NULL ORDER BY kind')).map((p) => p.kind);
  t.same(kinds, ['corrupt-replica', 'missing-replica', 'unknown-file'], '--record records them');

  await rm(g.roots.n2!, { recursive: true });
  const gone = await g.run('n1', ['fsck']);
  t.equal(gone.code, 1, 'an unreachable node is not clean');
  t.match(gone.stderr, /unreachable\tn2/);
});
