/**
 * Found by the soak (full form, seed 2): one cron `replicate` counted a
 * failed copy, its source on n1 "ENOENT /w2/m2-195/m2-631/f2-620…" twice in a
 * row while metadata did not change.
 *
 * A replica row whose node path differs from its file's path is a pending
 * rename: the node still holds the bytes at the row's path until its
 * replicator moves them. A folder rename through the mount renames the whole
 * folder on every node — the pending bytes move with it — but the metadata
 * side moved only the rows that sat at their file's path. A pending row kept
 * naming the old folder, where its node no longer had anything: copies from it
 * failed, its node's pending rename failed, and the copy counted for the file
 * was not where metadata said.
 *
 * The pending state is set up here as an unapplied rename leaves it (n1 holds
 * the bytes at the file's old name, its row says so); the folder rename and
 * everything after it are the real mount and the real replicator.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid, sha256 } from '../faults/lib.js';

t.test('a folder rename moves pending replica rows with the bytes', async (t) => {
  const g = await faultGrid(t, { nodes: 3, replicaTarget: 2 });
  const m = await g.mount();
  const mp = (p: string) => path.join(m.mountpoint, p);
  const body = Buffer.from('bytes that must stay findable\n'.repeat(100));
  await fs.mkdir(mp('a/deep'), { recursive: true });
  await fs.writeFile(mp('a/deep/x'), body);
  const rows = async () =>
    g.store.query<{ node: string; path: string }>(
      `SELECT n.name AS node, r.path FROM replicas r JOIN nodes n ON n.id = r.node_id JOIN files f ON f.id = r.file_id
        WHERE f.deleted_at IS NULL AND (f.path LIKE '/a/%' OR f.path LIKE '/b/%') ORDER BY 1`,
    );
  // bring the file to its target (2 copies) with the real replicators
  for (let i = 0; i < 3 && (await rows()).length < 2; i++) for (const n of Object.keys(g.nodes)) await g.replicate(n);
  const before = await rows();
  t.equal(before.length, 2, 'two copies', { rows: before });
  const holder = before[0]!.node;
  const other = before[1]!.node;
  const root = g.nodes[holder]!;

  // the holder has not applied a rename y -> x yet: bytes and row at the old name
  await fs.rename(path.join(root, 'a/deep/x'), path.join(root, 'a/deep/y'));
  await g.store.query(`UPDATE replicas SET path = '/a/deep/y' WHERE node_id = (SELECT id FROM nodes WHERE name = $1)`, [holder]);

  await fs.rename(mp('a'), mp('b'));
  t.ok(await fs.stat(path.join(root, 'b/deep/y')), `${holder} holds the bytes under the new folder name`);
  const after = Object.fromEntries((await rows()).map((r) => [r.node, r.path]));
  t.equal(after[holder], '/b/deep/y', `${holder}'s pending row moved with its bytes`);
  t.equal(after[other], '/b/deep/x', `${other}'s row moved with the file`);

  // the holder's replicator applies the pending rename; nothing fails, nothing is copied again
  const run = await g.replicate(holder);
  t.equal(run.code, 0, `replicate on ${holder}`, { out: run.stdout + run.stderr });
  t.same(Object.fromEntries((await rows()).map((r) => [r.node, r.path])), { [holder]: '/b/deep/x', [other]: '/b/deep/x' }, 'both rows at the file path');
  t.equal(sha256(await fs.readFile(path.join(root, 'b/deep/x'))), sha256(body), `${holder} has the bytes at the file's path`);
  t.equal(sha256(await fs.readFile(mp('b/deep/x'))), sha256(body), 'the mount reads it');
  // every node's run is clean, and metadata agrees with every node's bytes
  for (const n of Object.keys(g.nodes)) {
    const r = await g.replicate(n);
    t.equal(r.code, 0, `replicate on ${n}`, { out: r.stdout + r.stderr });
  }
  const fsck = await g.fsck(['--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean', { out: fsck.stdout + fsck.stderr });
});
