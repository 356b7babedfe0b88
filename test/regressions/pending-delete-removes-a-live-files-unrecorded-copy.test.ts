/**
 * Found by db-restart-writes (seed 21, 1 mount, 1 run in 8 with debug logs):
 * fsck "missing n3 /w1/d1-78/f1-105" — metadata counted a copy on n3 with
 * nothing there.
 *
 * During the outage the mount renamed F2 over /w1/d1-78/f1-105 on n1 and n3.
 * When PostgreSQL came back, n3's watch daemon saw the new bytes and walked
 * them in as a new file (id 380) before the mount replayed its journal; the
 * replay's rename then replaced 380 with F2, leaving 380's row on n3 as a
 * pending delete — at the path where F2's bytes were. n3's replicator applied
 * it (no live file's row named the path yet) and deleted F2's bytes; the
 * mount's reconcile had just recorded them as F2's copy on n3.
 *
 * A pending delete now leaves bytes that are the live file's current version
 * at the same path (size and checksum) and records them as its copy. The
 * state is made here as that replay leaves it; the rest is the real
 * `replicator replicate` and fsck.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, writeTree, assertDisksMatchMetadata, replicaState, sha256 } from '../replicator/grid.js';
import { unlinkFile } from '../../src/meta/fs-ops.js';

t.test("a pending delete keeps a live file's bytes at the same path and records them", async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2', 'n3'] });
  const body = Buffer.from('the live file, written during an outage\n'.repeat(60));
  for (const n of ['n1', 'n2', 'n3']) await writeTree(g.roots[n]!, { p: body });
  const w1 = await g.run('n1', ['replicator', 'walk']);
  t.equal(w1.code, 0, 'walk n1 registers the bytes as a file (the walk that came first)', { out: w1.stdout + w1.stderr });
  const n1 = await g.nodeId('n1');
  const n2 = await g.nodeId('n2');
  const n3 = await g.nodeId('n3');
  let live = 0;
  const walked = (await g.store.query<{ id: number; checksum: string; size: number; mode: number; mtime_us: number }>(`SELECT id, checksum, size, mode, mtime_us FROM files WHERE path = '/p'`))[0]!;
  // the replay: the walked file is replaced by the journal's file (same bytes, at its target on n2 and n3)
  await g.store.txn(async (tx) => {
    await unlinkFile(tx, '/p', [n2, n3], ['/p', '/p']);
    const f = await tx.query<{ id: number }>(
      `INSERT INTO files (path, folder_id, kind, size, checksum, mode, uid, gid, atime_us, mtime_us, ctime_us, class, replica_target, backup_target)
       SELECT '/p', id, 'file', $1, $2, $3, 0, 0, $4, $4, $4, 'default', 2, 0 FROM folders WHERE path = '/' RETURNING id`,
      [walked.size, walked.checksum, walked.mode, walked.mtime_us],
    );
    for (const n of [n2, n3]) await tx.query('INSERT INTO replicas (file_id, node_id, version, path) VALUES ($1, $2, 1, $3)', [f[0]!.id, n, '/p']);
    live = f[0]!.id;
  });
  const pending = await g.store.query(`SELECT 1 FROM replicas WHERE file_id = $1 AND node_id = $2`, [walked.id, n1]);
  t.equal(pending.length, 1, "n1's row of the replaced file is a pending delete at /p");

  const run = await g.run('n1', ['replicator', 'replicate']);
  t.equal(run.code, 0, 'replicate on n1', { out: run.stdout + run.stderr });
  t.equal(sha256(await readFile(path.join(g.roots.n1!, 'p')).catch(() => Buffer.alloc(0))), sha256(body), "n1 still has the live file's bytes");
  const rows = await g.store.query<{ node_id: number }>('SELECT node_id FROM replicas WHERE file_id = $1 ORDER BY node_id', [live]);
  t.same(rows.map((r) => r.node_id), [n1, n2, n3].sort((a, b) => a - b), "and they count as the live file's copy on n1");
  // three copies of a class of two: marked over-replicated, and trimmed by runs with --trim
  for (let i = 0; i < 2; i++) for (const n of ['n1', 'n2', 'n3']) await g.run(n, ['replicator', 'replicate', '--trim']);
  const state = await replicaState(g.store);
  t.equal(state.length, 1, 'one file');
  t.equal(state[0]?.nodes.length, 2, 'at its target of two copies', { state });
  await assertDisksMatchMetadata(t, g);
  const fsck = await g.run('n1', ['fsck', '--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean', { out: fsck.stdout + fsck.stderr });
});
