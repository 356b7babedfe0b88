/**
 * Found by the crash fault test (CI form, seed 11, 2026-12-02): a mount
 * killed with SIGKILL in the middle of an unlink left metadata naming a
 * live file whose only current copy was already gone from its node; after
 * the restart the file was unreadable (EIO), never reached its target
 * (nothing to copy from), fsck reported it missing forever and every backup
 * run failed on it. An unlink (and a rename) changes the node folders before
 * its metadata record; a crash in between left the two disagreeing. Both
 * now write an intent first (as a writer's publish does), and the next start
 * finishes the change while metadata still shows the entry as it was.
 *
 * The first mount runs in a child process that is really killed (-9) while
 * one node's unlink or rename is held back (a slow NFS server); the restart
 * is GridFs in-process on the same journal, against the same real
 * PostgreSQL and node folders.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeGrid } from '../helpers/mount.js';
import { cliProcess } from '../helpers/cli.js';
import { loadConfig } from '../../src/config/load.js';
import { MetaStore } from '../../src/meta/store.js';
import { GridFs } from '../../src/fs/grid-fs.js';
import { journalFile } from '../../src/fs/journal.js';
import { lookup, recordReplica } from '../../src/meta/files.js';
import { listNodes } from '../../src/meta/nodes.js';
import { silentLogger } from '../../src/util/log.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const mod = (p: string) => JSON.stringify(path.resolve(here, '../../src', p));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A mount (GridFs) in a child process: runs one unlink or rename, holding `holdNode`'s node call forever. */
const child = `
import { loadConfig } from ${mod('config/load.js')};
import { MetaStore } from ${mod('meta/store.js')};
import { GridFs } from ${mod('fs/grid-fs.js')};
import { silentLogger } from ${mod('util/log.js')};
const [configFile, journal, op, a, b, holdNode] = process.argv.slice(1);
const config = await loadConfig({ configPath: configFile });
const store = await MetaStore.connect(config.database.url, { poolSize: 4 });
const gfs = new GridFs({ config, store, log: silentLogger, journalFile: journal, origin: 'doomed' });
await gfs.start();
for (const call of ['unlink', 'rename']) {
  const real = gfs.io[call].bind(gfs.io);
  gfs.io[call] = async (node, ...args) => {
    if (node.name === holdNode && call === op) {
      process.stdout.write('holding\\n');
      await new Promise(() => {});
    }
    return real(node, ...args);
  };
}
await (op === 'unlink' ? gfs.unlink(a) : gfs.rename(a, b));
process.stdout.write('finished\\n');
`;

async function runUntilHeld(args: string[]): Promise<void> {
  const p = spawn(process.execPath, ['--input-type=module', '-e', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('holding')) resolve();
    });
    p.on('exit', (code) => reject(new Error(`child exited (${code}) before holding: ${out} ${err}`)));
  });
  p.kill('SIGKILL');
  await new Promise((r) => p.once('exit', r));
}

t.test('a mount killed between the node changes and the metadata record: the next start finishes the change', async (t) => {
  const g = await makeGrid(t, { nodes: 2 });
  const config = await loadConfig({ configPath: g.configFile });
  const store = await MetaStore.connect(g.url, { poolSize: 4 });
  t.teardown(() => store.close());
  const nodeIds = Object.fromEntries((await listNodes(store)).map((n) => [n.name, n.id]));

  // files on both nodes, registered (as after replication)
  const first = new GridFs({ config, store, log: silentLogger, journalFile: journalFile(config.dataDir, path.join(g.dir, 'setup')), origin: 'setup' });
  await first.start();
  await first.mkdir('/d', 0o755);
  const content: Record<string, string> = { '/d/gone.txt': 'to be unlinked', '/d/from.txt': 'to be renamed', '/d/over.txt': 'to be replaced' };
  for (const [vpath, text] of Object.entries(content)) {
    const fd = await first.create(vpath, 0o644);
    await first.write(fd, Buffer.from(text), 0);
    await first.flush(fd);
    await first.release(fd);
  }
  await first.stop();
  for (const vpath of Object.keys(content)) {
    const e = await lookup(store, vpath);
    if (e?.type !== 'file') throw new Error(`${vpath} not registered`);
    const holder = (await store.query<{ name: string }>('SELECT n.name FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE r.file_id = $1', [e.file.id]))[0]!.name;
    const other = holder === 'n1' ? 'n2' : 'n1';
    await fs.mkdir(path.join(g.nodes[other]!, 'd'), { recursive: true });
    await fs.copyFile(path.join(g.nodes[holder]!, vpath), path.join(g.nodes[other]!, vpath));
    await recordReplica(store, e.file.id, nodeIds[other]!, e.file.version, vpath);
  }
  const fsck0 = await cliProcess(['fsck', '-c', g.configFile], { cwd: g.dir });
  t.equal(fsck0.code, 0, 'fsck clean before', { out: fsck0.stdout + fsck0.stderr });

  const journal = journalFile(config.dataDir, path.join(g.dir, 'mnt'));
  const before = {
    gone: (await lookup(store, '/d/gone.txt'))!,
    from: (await lookup(store, '/d/from.txt'))!,
  };

  // kill -9 with n1 changed and n2's call held
  await runUntilHeld([g.configFile, journal, 'unlink', '/d/gone.txt', '', 'n2']);
  t.notOk(await fs.stat(path.join(g.nodes.n1!, 'd/gone.txt')).catch(() => null), 'crash state: n1 unlinked');
  t.ok(await fs.stat(path.join(g.nodes.n2!, 'd/gone.txt')).catch(() => null), 'crash state: n2 not yet');
  t.same((await lookup(store, '/d/gone.txt'))?.type, 'file', 'crash state: metadata not changed');
  // the next run on that journal (itself killed mid-rename: its start finished the unlink first)
  await runUntilHeld([g.configFile, journal, 'rename', '/d/from.txt', '/d/over.txt', 'n2']);
  t.equal(await fs.readFile(path.join(g.nodes.n1!, 'd/over.txt'), 'utf8'), 'to be renamed', 'crash state: renamed on n1');
  t.equal(await fs.readFile(path.join(g.nodes.n2!, 'd/from.txt'), 'utf8'), 'to be renamed', 'crash state: not on n2');
  t.same((await lookup(store, '/d/from.txt'))?.type, 'file', 'crash state: metadata not changed');

  // the mount starts again (same journal)
  const again = new GridFs({ config, store, log: silentLogger, journalFile: journal, origin: 'restarted' });
  await again.start();
  t.teardown(() => again.stop());

  t.equal(await lookup(store, '/d/gone.txt'), null, 'the unlink is finished in metadata');
  for (const n of ['n1', 'n2']) t.notOk(await fs.stat(path.join(g.nodes[n]!, 'd/gone.txt')).catch(() => null), `and on ${n}`);
  t.equal(await lookup(store, '/d/from.txt'), null, 'the rename is finished in metadata: the source is gone');
  const over = await lookup(store, '/d/over.txt');
  t.equal(over?.type === 'file' ? over.file.id : null, before.from.type === 'file' ? before.from.file.id : -1, 'the destination is the renamed file');
  t.equal(over?.type === 'file' ? over.file.checksum : null, sha('to be renamed'));
  for (const n of ['n1', 'n2']) {
    t.equal(await fs.readFile(path.join(g.nodes[n]!, 'd/over.txt'), 'utf8').catch(() => null), 'to be renamed', `${n} holds the renamed bytes at the destination`);
    t.notOk(await fs.stat(path.join(g.nodes[n]!, 'd/from.txt')).catch(() => null), `${n} has no source left`);
  }
  const fsck = await cliProcess(['fsck', '--checksums', '--orphans', '-c', g.configFile], { cwd: g.dir });
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean after the restart', { out: fsck.stdout + fsck.stderr });
  t.ok(before.gone, 'had the file');
});

t.test('an interrupted change is left alone when metadata moved on meanwhile (another mount wrote the path)', async (t) => {
  const g = await makeGrid(t, { nodes: 2 });
  const config = await loadConfig({ configPath: g.configFile });
  const store = await MetaStore.connect(g.url, { poolSize: 4 });
  t.teardown(() => store.close());
  const other = new GridFs({ config, store, log: silentLogger, journalFile: journalFile(config.dataDir, path.join(g.dir, 'other')), origin: 'other' });
  await other.start();
  t.teardown(() => other.stop());
  const write = async (vpath: string, text: string) => {
    const fd = await other.create(vpath, 0o644);
    await other.write(fd, Buffer.from(text), 0);
    await other.flush(fd);
    await other.release(fd);
  };
  await write('/x.txt', 'version one');
  const e = (await lookup(store, '/x.txt'))!;
  const holder = e.type === 'file' ? (await store.query<{ name: string }>('SELECT n.name FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE r.file_id = $1', [e.file.id]))[0]!.name : 'n1';
  const notHolder = holder === 'n1' ? 'n2' : 'n1';
  const journal = journalFile(config.dataDir, path.join(g.dir, 'mnt'));
  // the doomed mount's unlink: held on the holder (nothing changed yet anywhere), killed
  await runUntilHeld([g.configFile, journal, 'unlink', '/x.txt', '', holder]);
  // another mount writes a new version meanwhile
  await write('/x.txt', 'version two, written after the crash');
  const again = new GridFs({ config, store, log: silentLogger, journalFile: journal, origin: 'restarted' });
  await again.start();
  t.teardown(() => again.stop());
  const now = await lookup(store, '/x.txt');
  t.equal(now?.type === 'file' ? now.file.checksum : null, sha('version two, written after the crash'), 'the newer version stays registered');
  const onNodes = await Promise.all(['n1', 'n2'].map((n) => fs.readFile(path.join(g.nodes[n]!, 'x.txt'), 'utf8').catch(() => null)));
  t.ok(onNodes.includes('version two, written after the crash'), 'and its bytes stay on their node', { onNodes, notHolder });
});
