/**
 * Ordinary tools on the mount: cp -a, rsync -a, tar x, diff -r, find, du, df.
 * Then metadata agrees with the bytes (every file's checksum and size), and
 * with the `rand` policy new files spread over every node.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { listTree, makeGrid, sh } from '../helpers/mount.js';

/** A small real tree: a subset of /usr/share/doc (a few hundred files). */
async function sourceTree(): Promise<string> {
  const dir = await scratchDir('doc-src-');
  const docs = (await fs.readdir('/usr/share/doc')).sort().slice(0, 40);
  for (const d of docs) {
    const r = await sh('cp', ['-a', path.join('/usr/share/doc', d), dir]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  return dir;
}

t.test('cp -a, rsync -a, tar, diff -r, find, du, df', async (t) => {
  const grid = await makeGrid(t, { config: { mount: { placement: 'rand' } } });
  const m = await grid.mount();
  const src = await sourceTree();
  const count = (await sh('sh', ['-c', `find "${src}" | wc -l`])).stdout.trim();
  t.comment(`source: ${count} entries`);

  const cp = await sh('cp', ['-a', src, path.join(m.mountpoint, 'cp')]);
  t.equal(cp.code, 0, `cp -a ${cp.stderr}`);
  const diffCp = await sh('diff', ['-r', '--no-dereference', src, path.join(m.mountpoint, 'cp')]);
  t.equal(diffCp.code, 0, `diff -r after cp -a: ${diffCp.stdout.slice(0, 500)}`);
  t.equal((await sh('sh', ['-c', `find "${m.mountpoint}/cp" | wc -l`])).stdout.trim(), count, 'find | wc -l matches');

  const rs = await sh('rsync', ['-a', src + '/', path.join(m.mountpoint, 'rsync') + '/']);
  t.equal(rs.code, 0, `rsync -a ${rs.stderr}`);
  t.equal((await sh('diff', ['-r', '--no-dereference', src, path.join(m.mountpoint, 'rsync')])).code, 0, 'diff -r after rsync -a');
  const again = await sh('rsync', ['-a', '--itemize-changes', src + '/', path.join(m.mountpoint, 'rsync') + '/']);
  t.equal(again.code, 0, 'rsync -a again succeeds');

  const tarFile = path.join(await scratchDir('tar-'), 'src.tar');
  t.equal((await sh('tar', ['-cf', tarFile, '-C', src, '.'])).code, 0, 'tar created');
  await fs.mkdir(path.join(m.mountpoint, 'tar'));
  const tx = await sh('tar', ['-xf', tarFile, '-C', path.join(m.mountpoint, 'tar')]);
  t.equal(tx.code, 0, `tar -x ${tx.stderr}`);
  t.equal((await sh('diff', ['-r', '--no-dereference', src, path.join(m.mountpoint, 'tar')])).code, 0, 'diff -r after tar -x');

  // names, types, sizes, modes, owners and mtimes as the tools left them
  const listing = async (root: string) => (await sh('sh', ['-c', `cd "${root}" && find . -printf '%P %y %s %m %U %G %T@\\n' | grep -v '^ ' | sort`])).stdout;
  const want = await listing(src);
  for (const sub of ['cp', 'rsync', 'tar']) {
    const got = await listing(path.join(m.mountpoint, sub));
    const dirsTimeless = (l: string) => l.split('\n').map((x) => (x.split(' ')[1] === 'd' ? x.split(' ').slice(0, -1).join(' ') : x)).join('\n');
    t.equal(dirsTimeless(got), dirsTimeless(want), `${sub}: names, types, sizes, modes, owners and file mtimes kept`);
  }

  // modes and owners as cp -a left them
  const s1 = await fs.lstat(path.join(src, (await listTree(src))[0]!));
  const s2 = await fs.lstat(path.join(m.mountpoint, 'cp', (await listTree(src))[0]!));
  t.equal(s2.mode, s1.mode, 'mode kept');
  t.equal(s2.uid, s1.uid, 'owner kept');

  const du = await sh('du', ['-sb', path.join(m.mountpoint, 'cp')]);
  const duSrc = await sh('du', ['-sb', src]);
  t.ok(Number(du.stdout.split('\t')[0]) > 0, `du -sb works (${du.stdout.trim()} vs ${duSrc.stdout.trim()})`);
  const df = await sh('df', ['-B1', '--output=size,avail', m.mountpoint]);
  const [size, avail] = df.stdout.trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
  const dfNode = await sh('df', ['-B1', '--output=size', grid.nodes.n1!]);
  const nodeSize = Number(dfNode.stdout.trim().split('\n')[1]);
  t.ok(size! >= nodeSize * 2.9 && size! <= nodeSize * 3.1, `df sums the three nodes (${size} vs 3 x ${nodeSize})`);
  t.ok(avail! > 0, 'df shows free space');

  // metadata agrees with the bytes
  const files = await grid.store.query<{ path: string; size: number; checksum: string; node: string; rpath: string }>(
    `SELECT f.path, f.size, f.checksum, n.name AS node, r.path AS rpath FROM files f JOIN replicas r ON r.file_id = f.id AND r.version = f.version
       JOIN nodes n ON n.id = r.node_id WHERE f.deleted_at IS NULL AND f.kind = 'file'`,
  );
  const tree = (await listTree(m.mountpoint)).filter((p) => !p.includes('/.') || true);
  let bad = 0;
  for (const f of files) {
    const bytes = await fs.readFile(path.join(grid.nodes[f.node]!, f.rpath));
    if (bytes.length !== f.size || createHash('sha256').update(bytes).digest('hex') !== f.checksum) bad++;
  }
  const regular = (await sh('sh', ['-c', `find "${m.mountpoint}" -type f | wc -l`])).stdout.trim();
  t.equal(files.length, Number(regular), `every regular file is in metadata (${files.length})`);
  t.equal(bad, 0, 'every checksum and size in metadata equals the bytes on the node');
  t.ok(tree.length > 0);
  const perNode = new Map<string, number>();
  for (const f of files) perNode.set(f.node, (perNode.get(f.node) ?? 0) + 1);
  t.comment(`files per node (rand): ${JSON.stringify(Object.fromEntries(perNode))}`);
  t.equal(perNode.size, 3, 'the rand policy spread files over all three nodes');

  // rm -r of a big tree
  const rm = await sh('rm', ['-r', path.join(m.mountpoint, 'rsync')]);
  t.equal(rm.code, 0, 'rm -r');
  const live = await grid.store.query<{ n: number }>(`SELECT count(*)::int AS n FROM files WHERE deleted_at IS NULL AND path LIKE '/rsync/%'`);
  t.equal(live[0]!.n, 0, 'rm -r leaves no live file in metadata');
  const onNodes = await Promise.all(Object.values(grid.nodes).map((n) => fs.stat(path.join(n, 'rsync')).then(() => 1, () => 0)));
  t.same(onNodes, [0, 0, 0], 'and nothing on the nodes');
});

t.test('mfs and ff place by policy', async (t) => {
  const grid = await makeGrid(t, { config: { mount: { placement: 'ff' } } });
  const m = await grid.mount();
  for (let i = 0; i < 5; i++) await fs.writeFile(path.join(m.mountpoint, `f${i}`), 'x');
  const rows = await grid.store.query<{ node: string }>(`SELECT DISTINCT n.name AS node FROM replicas r JOIN nodes n ON n.id = r.node_id`);
  t.same(rows.map((r) => r.node), ['n1'], 'ff: all on the first node');
});

t.test('only active nodes take new files', async (t) => {
  const grid = await makeGrid(t, { config: { mount: { placement: 'ff' } } });
  await grid.store.query(`UPDATE nodes SET state = 'readonly' WHERE name = 'n1'`);
  await grid.store.query(`UPDATE nodes SET state = 'drain' WHERE name = 'n2'`);
  const m = await grid.mount();
  for (let i = 0; i < 3; i++) await fs.writeFile(path.join(m.mountpoint, `f${i}`), 'x');
  const rows = await grid.store.query<{ node: string }>(`SELECT DISTINCT n.name AS node FROM replicas r JOIN nodes n ON n.id = r.node_id`);
  t.same(rows.map((r) => r.node), ['n3'], 'readonly and drain nodes are skipped');
});
