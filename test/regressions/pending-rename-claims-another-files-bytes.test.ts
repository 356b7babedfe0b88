/**
 * A replicator applying its node's pending renames (node_work) took any
 * file at a file's new path for that file's bytes when its old node path was
 * empty ("moved already, by a folder rename"): a pending rename on n1 of F
 * from /a-f to /b-g, with n1's bytes of F gone from /a-f, found /b-g on n1 —
 * G's bytes, themselves waiting to move to /b-g2 — and pointed F's row at
 * them. Once G's rename was applied, metadata counted a copy of F on n1 at
 * a path with nothing there (fsck: missing), and F was short of a copy
 * nobody would make. The same claim followed from a pending item read before
 * its paths were locked and changed by a mount meanwhile (the soak's
 * "missing n3 /w3/r3-683" with the bytes left at an old name).
 *
 * Now the item is read again under its paths' locks, and bytes at the new
 * path count as the file's only when no other replica row names that path
 * and (current version) size and mtime agree. The state is made as two
 * renames through a mount with n1 away leave it; the rest is the real
 * `replicator replicate`.
 */
import t from 'tap';
import { rename, rm, readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, assertDisksMatchMetadata, replicaState, sha256 } from '../replicator/grid.js';

t.test("a pending rename does not claim another file's bytes at its new path", async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  const F = Buffer.from('F: the file renamed onto /b-g\n'.repeat(40));
  const G = Buffer.from('G: the file that was at /b-g, renamed to /b-g2\n'.repeat(30));
  for (const n of ['n1', 'n2']) await writeTree(g.roots[n]!, { 'a-f': F, 'b-g': G });
  for (const n of ['n1', 'n2']) {
    const w = await g.run(n, ['replicator', 'walk']);
    t.equal(w.code, 0, `walk ${n}`, { out: w.stdout + w.stderr });
  }
  const ids = await g.store.query<{ id: number; path: string }>(`SELECT id, path FROM files WHERE deleted_at IS NULL ORDER BY id`);
  t.same(ids.map((r) => r.path), ['/a-f', '/b-g'], 'F registered before G (node_work is applied in file order)');
  const n2 = await g.nodeId('n2');

  // G renamed /b-g -> /b-g2, then F /a-f -> /b-g, both with n1 away: done on n2, pending on n1
  await rename(path.join(g.roots.n2!, 'b-g'), path.join(g.roots.n2!, 'b-g2'));
  await rename(path.join(g.roots.n2!, 'a-f'), path.join(g.roots.n2!, 'b-g'));
  await g.store.txn(async (tx) => {
    await tx.query(`UPDATE files SET path = '/b-g2' WHERE id = $1`, [ids[1]!.id]);
    await tx.query(`UPDATE replicas SET path = '/b-g2' WHERE file_id = $1 AND node_id = $2`, [ids[1]!.id, n2]);
    await tx.query(`UPDATE files SET path = '/b-g' WHERE id = $1`, [ids[0]!.id]);
    await tx.query(`UPDATE replicas SET path = '/b-g' WHERE file_id = $1 AND node_id = $2`, [ids[0]!.id, n2]);
  });
  // and n1's copy of F is not at its old path any more (as a mount's move of it, read too early, leaves it)
  await rm(path.join(g.roots.n1!, 'a-f'));

  const run = await g.run('n1', ['replicator', 'replicate']);
  t.equal(run.code, 0, 'replicate on n1', { out: run.stdout + run.stderr });
  // F lost its copy on n1 for real; the next runs make it again from n2
  for (let i = 0; i < 3; i++) for (const n of ['n1', 'n2']) await g.run(n, ['replicator', 'replicate']);
  t.same(await replicaState(g.store), [
    { path: '/b-g', target: 2, nodes: ['n1', 'n2'] },
    { path: '/b-g2', target: 2, nodes: ['n1', 'n2'] },
  ], 'both files at target, every row at its file path');
  for (const n of ['n1', 'n2']) {
    t.equal(sha256(await readFile(path.join(g.roots[n]!, 'b-g'))), sha256(F), `${n}: /b-g holds F`);
    t.equal(sha256(await readFile(path.join(g.roots[n]!, 'b-g2'))), sha256(G), `${n}: /b-g2 holds G`);
  }
  await assertDisksMatchMetadata(t, g);
  const fsck = await g.run('n1', ['fsck', '--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean', { out: fsck.stdout + fsck.stderr });
});
