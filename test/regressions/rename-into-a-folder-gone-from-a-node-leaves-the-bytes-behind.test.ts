/**
 * Found by the soak (full form, seed 2, on 202ef14): fsck reported a copy on
 * n3 missing at the file's path and the same bytes as an orphan at an old
 * name, which every listing through the mounts then showed as an extra file.
 *
 * A mount makes a node's folders lazily and remembers which it made; another
 * mount's rmdir or a replicator pruning a folder it emptied removes them
 * behind its back. A rename into such a folder failed on that node with
 * ENOENT — which the mount took for "this node has nothing to move": the node
 * was counted as done, metadata moved its replica row to the new path, and
 * the bytes stayed at the old one. The mount now makes the folder again and
 * retries (as it did already for a new file's first write); ENOENT counts as
 * "nothing to move" only when the source really is not on the node.
 *
 * The folder is removed from the node folder directly, as a replicator's
 * pruning does; the renames are the real mount's.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid, sha256 } from '../faults/lib.js';

t.test('a rename into a folder that went away on a node moves the bytes there', async (t) => {
  const g = await faultGrid(t, { nodes: 2, replicaTarget: 2 });
  const m = await g.mount();
  const mp = (p: string) => path.join(m.mountpoint, p);
  const rows = async (like: string) =>
    Object.fromEntries(
      (
        await g.store.query<{ node: string; path: string }>(
          `SELECT n.name AS node, r.path FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN files f ON f.id = r.file_id
            WHERE f.deleted_at IS NULL AND f.path LIKE $1 ORDER BY 1`,
          [like],
        )
      ).map((r) => [r.node, r.path]),
    );
  const file = Buffer.from('a file renamed into a folder its node no longer has\n'.repeat(50));
  await fs.mkdir(mp('keep'));
  await fs.mkdir(mp('dst'));
  await fs.writeFile(mp('dst/first'), 'the mount makes dst on the nodes here\n');
  await fs.writeFile(mp('keep/file'), file);
  await fs.mkdir(mp('keep/sub'));
  await fs.writeFile(mp('keep/sub/inner'), file);
  for (let i = 0; i < 3 && Object.keys(await rows('/keep/%')).length < 2; i++) for (const n of Object.keys(g.nodes)) await g.replicate(n);
  t.same(Object.keys(await rows('/keep/file')), ['n1', 'n2'], 'the file has its two copies');
  t.same(Object.keys(await rows('/keep/sub/inner')), ['n1', 'n2'], 'so has the folder’s file');

  // dst is emptied and pruned on n1 behind the mount's back; metadata still has it
  await fs.rm(path.join(g.nodes.n1!, 'dst'), { recursive: true });
  await g.store.query(`DELETE FROM replicas WHERE node_id = (SELECT id FROM nodes WHERE name = 'n1') AND path = '/dst/first'`);

  await fs.rename(mp('keep/file'), mp('dst/file'));
  await fs.rename(mp('keep/sub'), mp('dst/sub'));
  for (const [n, root] of Object.entries(g.nodes)) {
    t.equal(sha256(await fs.readFile(path.join(root, 'dst/file'))), sha256(file), `${n} holds the file at its new path`);
    t.equal(sha256(await fs.readFile(path.join(root, 'dst/sub/inner'))), sha256(file), `${n} holds the folder's file at its new path`);
    await t.rejects(fs.lstat(path.join(root, 'keep/file')), { code: 'ENOENT' }, `nothing left at the old path on ${n}`);
  }
  t.same(await rows('/dst/file'), { n1: '/dst/file', n2: '/dst/file' }, 'the rows name where the bytes are');
  t.same(await rows('/dst/sub/%'), { n1: '/dst/sub/inner', n2: '/dst/sub/inner' }, "the folder's rows too");
  t.same((await fs.readdir(mp('keep'))).sort(), [], 'the old folder lists empty through the mount');
});
