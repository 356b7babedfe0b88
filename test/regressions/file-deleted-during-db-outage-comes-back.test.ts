/**
 * Found by the DB-restart fault test (full form, seed 21, 2 mounts, once in
 * two runs, 2026-12-02): a file deleted while PostgreSQL was away was back
 * after the recovery, on both mounts, with a clean fsck. The delete ran
 * without the grid-wide locks (they live in the database) and its journal
 * record named every node as handled, also one that had no copy (ENOENT).
 * When PostgreSQL came back, a replicator — acting on metadata that did not
 * know of the delete yet — placed a copy on that node; the replay then
 * dropped that node's new replica row with the others, and the reconcile
 * after it found bytes no metadata named and registered them as a new file.
 * Now a journaled unlink or rename counts only the nodes it changed (the
 * others' replica rows stay pending work for their replicators), and the
 * reconcile leaves alone bytes that another file's replica row names.
 *
 * In-process GridFs against a real PostgreSQL of its own, really stopped
 * and started; the replicator's copy is placed and recorded as
 * `replicator replicate` does it (its copy began before the delete, so no
 * run of the real command can be timed into that window), and the real
 * command then finishes the node's pending work.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeConfig } from '../helpers/db.js';
import { inProcessGrid } from '../helpers/mount.js';
import { cliProcess } from '../helpers/cli.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { lookup, recordReplica } from '../../src/meta/files.js';
import { listNodes } from '../../src/meta/nodes.js';

t.test('a delete made while the database was away stays a delete when a replicator copied the file meanwhile', async (t) => {
  const { g, config, gfs, dataDir } = await inProcessGrid(t, { nodes: 2, ownPostgres: 'outage-delete-' });
  // the recovery runs when this test says so (the mount's 1 s timer would race with the replicator below)
  const recover = gfs.tryRecover.bind(gfs);
  gfs.tryRecover = async () => undefined;

  const data = Buffer.from('the bytes of a file that is deleted during the outage');
  const fd = await gfs.create('/gone.txt', 0o644);
  await gfs.write(fd, data, 0);
  await gfs.flush(fd);
  await gfs.release(fd);
  const before = await lookup(g.store, '/gone.txt');
  if (before?.type !== 'file') throw new Error('not registered');
  const ids = Object.fromEntries((await listNodes(g.store)).map((n) => [n.name, n.id]));
  const holder = (await g.store.query<{ name: string }>('SELECT n.name FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE r.file_id = $1', [before.file.id]))[0]!.name;
  const other = holder === 'n1' ? 'n2' : 'n1';

  // the database goes away; the file is deleted through the mount (journaled)
  await stopEmbedded(dataDir);
  await gfs.unlink('/gone.txt');
  t.notOk(gfs.metaUp, 'degraded: the delete is journaled');
  t.equal(await fs.stat(path.join(g.nodes[holder]!, 'gone.txt')).catch(() => null), null, 'deleted on its node');

  // the database is back; before the mount notices, a replicator places its copy on the other node
  await ensureEmbedded(dataDir);
  await fs.writeFile(path.join(g.nodes[other]!, 'gone.txt'), data);
  await recordReplica(g.store, before.file.id, ids[other]!, before.file.version, '/gone.txt');

  await recover();
  t.ok(gfs.metaUp, 'recovered');
  t.equal(await lookup(g.store, '/gone.txt'), null, 'the file stays deleted in metadata');
  await t.rejects(gfs.getattr('/gone.txt'), { code: 'ENOENT' }, 'and through the mount');
  const pending = await g.store.query('SELECT 1 FROM node_work WHERE node_id = $1 AND file_id = $2', [ids[other]!, before.file.id]);
  t.equal(pending.length, 1, "the other node's copy is pending work for its replicator");

  // that node's replicator removes it
  const cfgDir = path.join(g.dir, 'cfg', other);
  await fs.mkdir(cfgDir, { recursive: true });
  const nodeConfig = await writeConfig(cfgDir, { dataDir: config.dataDir, database: { url: g.url }, nodes: g.nodes, host: { node: other }, replicator: { minFreeBytes: 0 } });
  const run = await cliProcess(['replicator', 'replicate', '-q', '-c', nodeConfig], { cwd: g.dir });
  t.equal(run.code, 0, 'replicate ran', { out: run.stdout + run.stderr });
  t.equal(await fs.stat(path.join(g.nodes[other]!, 'gone.txt')).catch(() => null), null, 'the copy is gone from the other node');
  const fsck = await cliProcess(['fsck', '--orphans', '-c', nodeConfig], { cwd: g.dir });
  t.equal(fsck.code, 0, 'fsck --orphans clean', { out: fsck.stdout + fsck.stderr });
});
