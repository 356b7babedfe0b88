/**
 * Reads fail over to the next replica, invisibly: a replica deleted from its
 * node, a node folder gone, and a node that HANGS (a frozen FUSE process in
 * front of the folder, like a dead NFS server) — the mount keeps answering.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { makeGrid, sh } from '../helpers/mount.js';
import { startHangFs } from '../helpers/hang.js';
import { getFile, recordReplica } from '../../src/meta/files.js';
import { getNode } from '../../src/meta/nodes.js';
import type { MetaStore } from '../../src/meta/store.js';

/** Copy a file's bytes to another node and record that replica (as the replicator would). */
async function addReplica(store: MetaStore, nodes: Record<string, string>, vpath: string, from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(path.join(nodes[to]!, vpath)), { recursive: true });
  await fs.copyFile(path.join(nodes[from]!, vpath), path.join(nodes[to]!, vpath));
  const file = (await getFile(store, vpath))!;
  await recordReplica(store, file.id, (await getNode(store, to))!.id, file.version, vpath);
}

t.test('a lost replica or a removed node folder: reads go to the other replica', async (t) => {
  const grid = await makeGrid(t, { nodes: 2, config: { mount: { placement: 'ff', readPolicy: 'ff' } } });
  const m = await grid.mount();
  const data = Buffer.alloc(300_000, 'q');
  await fs.writeFile(path.join(m.mountpoint, 'a.bin'), data);
  await fs.writeFile(path.join(m.mountpoint, 'b.bin'), data);
  t.ok(await fs.stat(path.join(grid.nodes.n1!, 'a.bin')), 'ff put it on n1');
  await addReplica(grid.store, grid.nodes, '/a.bin', 'n1', 'n2');
  await addReplica(grid.store, grid.nodes, '/b.bin', 'n1', 'n2');

  await fs.unlink(path.join(grid.nodes.n1!, 'a.bin'));
  t.same(await fs.readFile(path.join(m.mountpoint, 'a.bin')), data, 'replica deleted on n1: read from n2');

  await fs.rename(grid.nodes.n1!, grid.nodes.n1! + '.away');
  t.same(await fs.readFile(path.join(m.mountpoint, 'b.bin')), data, 'n1 folder gone: read from n2');
  const ls = await fs.readdir(m.mountpoint);
  t.same(ls.sort(), ['a.bin', 'b.bin'], 'listing still complete');
  await fs.rename(grid.nodes.n1! + '.away', grid.nodes.n1!);
});

t.test('a hung node does not hang the mount', async (t) => {
  const real = await scratchDir('hang-real-');
  const hangMnt = await scratchDir('hang-mnt-');
  const hang = await startHangFs(real, hangMnt);
  t.teardown(() => hang.stop());
  const grid = await makeGrid(t, { nodes: 2, config: { mount: { placement: 'ff', readPolicy: 'ff', opTimeoutSec: 20 }, storage: { timeoutMs: 1500, suspectMs: 60_000 } } });
  // n1 is the hang-able folder
  grid.nodes.n1 = hangMnt;
  const { writeConfig } = await import('../helpers/db.js');
  const cfgText = await fs.readFile(grid.configFile, 'utf8');
  await fs.writeFile(grid.configFile, cfgText.replace(JSON.stringify(path.join(grid.dir, 'nodes', 'n1')), JSON.stringify(hangMnt)));
  void writeConfig;
  const m = await grid.mount();
  const data = Buffer.alloc(100_000, 'h');
  await fs.writeFile(path.join(m.mountpoint, 'h.bin'), data);
  t.ok(await fs.stat(path.join(real, 'h.bin')), 'written on n1 (through the hang-able folder)');
  await addReplica(grid.store, { n1: real, n2: grid.nodes.n2! }, '/h.bin', 'n1', 'n2');

  hang.freeze();
  const t0 = Date.now();
  const got = await fs.readFile(path.join(m.mountpoint, 'h.bin'));
  const readMs = Date.now() - t0;
  t.same(got, data, `read served by n2 while n1 hangs (${readMs} ms)`);
  const t1 = Date.now();
  const ls = await fs.readdir(m.mountpoint);
  t.ok(ls.includes('h.bin'), `listing answers while n1 hangs (${Date.now() - t1} ms)`);
  await fs.writeFile(path.join(m.mountpoint, 'new.txt'), 'made while n1 hangs');
  t.ok(await fs.stat(path.join(grid.nodes.n2!, 'new.txt')), 'a new file goes to the healthy node');
  const df = await sh('df', [m.mountpoint]);
  t.equal(df.code, 0, 'df answers');
  hang.thaw();
});
