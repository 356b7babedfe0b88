/**
 * Found by review (the pattern of log rotation: `mv log log.1; mv new log`):
 * a file G renamed /g -> /g2 while its node n1 was away keeps its bytes at /g
 * on n1 (a pending rename, applied by n1's replicator). A rename of another
 * file F onto /g through the mount, with n1 back, renamed F's copy on n1 over
 * /g — G's bytes, its only copy in a class of one. G was gone for good and
 * metadata still counted it.
 *
 * A node where another file's replica row still names the destination is
 * now left out of the rename (its part stays pending, applied by its
 * replicator after G's bytes have moved on). The pending state is made as an
 * unapplied rename leaves it (metadata moved, n1 not); the renames and
 * everything after are the real mount and replicator.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid, sha256 } from '../faults/lib.js';

t.test("a rename onto a path where another file's pending copy sits leaves that copy alone", async (t) => {
  const g = await faultGrid(t, { nodes: 2, replicaTarget: 1 });
  const G = Buffer.from("G: the only copy, at its old name on n1\n".repeat(50));
  const F = Buffer.from('F: renamed onto /g\n'.repeat(70));
  await fs.writeFile(path.join(g.nodes.n1!, 'g'), G);
  for (const n of ['n1', 'n2']) await fs.writeFile(path.join(g.nodes[n]!, 'f'), F);
  for (const n of ['n1', 'n2']) {
    const w = await g.cli(['replicator', 'walk'], g.nodeConfigs[n]);
    t.equal(w.code, 0, `walk ${n}`, { out: w.stdout + w.stderr });
  }
  // G renamed /g -> /g2 while n1 was away: metadata moved, n1's bytes and row still at /g
  await g.store.query(`UPDATE files SET path = '/g2' WHERE path = '/g' AND deleted_at IS NULL`);
  const m = await g.mount();
  const mp = (p: string) => path.join(m.mountpoint, p);

  await fs.rename(mp('f'), mp('g'));
  t.equal(sha256(await fs.readFile(path.join(g.nodes.n1!, 'g'))), sha256(G), "n1's copy of G is still there");
  t.equal(sha256(await fs.readFile(mp('g'))), sha256(F), 'the mount reads F at /g');
  t.equal(sha256(await fs.readFile(mp('g2'))), sha256(G), 'and G at /g2');

  // n1's replicator moves G's bytes on, then F's
  for (let i = 0; i < 2; i++) {
    const r = await g.replicate('n1');
    t.equal(r.code, 0, `replicate on n1 (${i + 1})`, { out: r.stdout + r.stderr });
  }
  t.equal(sha256(await fs.readFile(path.join(g.nodes.n1!, 'g2'))), sha256(G), 'n1 holds G at /g2');
  t.equal(sha256(await fs.readFile(path.join(g.nodes.n1!, 'g'))), sha256(F), 'n1 holds F at /g');
  t.equal(sha256(await fs.readFile(mp('g2'))), sha256(G), 'G reads back through the mount');
  const fsck = await g.fsck(['--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean', { out: fsck.stdout + fsck.stderr });
});
