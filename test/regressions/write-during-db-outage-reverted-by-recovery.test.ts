/**
 * Found by the DB-restart fault test (full form, seed 21, once in two
 * runs): a file overwritten while PostgreSQL was away showed its previous
 * bytes after the database came back, on every node. A commit made while
 * degraded cannot take the grid-wide path locks (they live in the
 * database); it writes its journal line, then renames its temp into place.
 * The recovery (journal replay, then a reconcile of every path the journal
 * touched, under the grid-wide locks) could run between the two: reconcile
 * found only the old bytes on the nodes, registered them, and the new bytes
 * that landed a moment later were a copy metadata did not know (the
 * replicators then replaced them with the old version). A mount-local path
 * lock under the grid-wide one now makes the recovery wait for the change.
 *
 * In-process (GridFs without FUSE, which adds nothing here) against a real
 * PostgreSQL of its own that is really stopped and started; the node's
 * rename is held back the way a slow NFS server holds it.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { constants } from 'node:fs';
import { inProcessGrid, sleep } from '../helpers/mount.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { GridFs } from '../../src/fs/grid-fs.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function writeFile(gfs: GridFs, vpath: string, text: string, create: boolean): Promise<void> {
  const fd = create ? await gfs.create(vpath, 0o644) : await gfs.open(vpath, constants.O_WRONLY | constants.O_TRUNC);
  const data = Buffer.from(text);
  await gfs.write(fd, data, 0);
  await gfs.flush(fd);
  await gfs.release(fd);
}

t.test('a change made while the database is away is finished before the recovery reconciles its path', async (t) => {
  const { g, gfs, dataDir } = await inProcessGrid(t, { nodes: 1, ownPostgres: 'outage-commit-' });

  await writeFile(gfs, '/a.txt', 'old bytes', true);
  const before = await g.store.query<{ checksum: string }>('SELECT checksum FROM files WHERE path = $1', ['/a.txt']);
  t.equal(before[0]?.checksum, sha('old bytes'), 'first version registered');

  // the database goes away
  await stopEmbedded(dataDir);

  // hold back the node's rename of the new version's temp over /a.txt
  let releaseRename!: () => void;
  const renameHeld = new Promise<void>((r) => (releaseRename = r));
  let renameReached!: () => void;
  const reached = new Promise<void>((r) => (renameReached = r));
  const rename = gfs.io.rename.bind(gfs.io);
  gfs.io.rename = async (node, from, to) => {
    if (to === '/a.txt') {
      renameReached();
      await renameHeld;
    }
    return rename(node, from, to);
  };

  const writing = writeFile(gfs, '/a.txt', 'new bytes, written during the outage', false);
  await reached; // journal line written (degraded), temp not yet in place
  t.notOk(gfs.metaUp, 'the mount is degraded');

  // the database is back; the recovery runs (its 1 s timer, and here by hand) while the rename is held
  await ensureEmbedded(dataDir);
  void gfs.tryRecover();
  await sleep(3000);
  releaseRename();
  await writing;
  t.ok(await until(async () => gfs.metaUp && gfs.journal.pending === 0, 20_000), 'recovered: journal replayed');

  const onNode = await fs.readFile(path.join(g.nodes.n1!, 'a.txt'), 'utf8');
  t.equal(onNode, 'new bytes, written during the outage', 'the node holds the new bytes');
  const rows = await g.store.query<{ checksum: string; size: string }>('SELECT checksum, size FROM files WHERE path = $1 AND deleted_at IS NULL', ['/a.txt']);
  t.equal(rows[0]?.checksum, sha('new bytes, written during the outage'), 'metadata registers the new bytes, not the ones from before the outage');
  const current = await g.store.query<{ n: string }>(
    'SELECT count(*) AS n FROM replicas r JOIN files f ON f.id = r.file_id WHERE f.path = $1 AND r.version = f.version',
    ['/a.txt'],
  );
  t.equal(Number(current[0]?.n), 1, "the node's copy is the current version");
});

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(200);
  }
  return false;
}
