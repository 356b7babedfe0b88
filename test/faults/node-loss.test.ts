/**
 * A node that vanishes, turns read-only or runs out of space (real small
 * loop-mounted ext4 filesystems and read-only bind mounts, as root):
 * failover where another replica can serve, a clear errno where nothing
 * can, never a hang, never a partial file registered, and fsck clean once
 * the node is back.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { sh } from '../helpers/mount.js';
import { Model, compareTree, faultGrid, figures, randomBytes, treeOk, underTarget, until, type FaultGrid } from './lib.js';

async function settle(g: FaultGrid, nodes: string[]): Promise<boolean> {
  return until(
    async () => {
      await Promise.all(nodes.map((n) => g.replicate(n)));
      return (await underTarget(g)).length === 0;
    },
    30_000,
    300,
  );
}

async function errnoOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );
}

t.test('a vanished node: failover for files with another copy, a clear errno for the others', async (t) => {
  const g = await faultGrid(t, { nodes: 3, storage: { timeoutMs: 2000, suspectMs: 2000 } });
  const m = await g.mount();
  const model = new Model();
  for (let i = 0; i < 12; i++) {
    const data = randomBytes(2000 + i * 1000);
    await fs.writeFile(path.join(m.mountpoint, `f${i}`), data);
    model.files.set(`/f${i}`, data);
  }
  t.ok(await settle(g, ['n1', 'n2', 'n3']), 'two copies of everything');
  // a single-copy file on n1 only (placed by hand, then walked)
  await fs.writeFile(path.join(g.nodes.n1!, 'only-on-n1'), 'lonely');
  t.equal((await g.cli(['replicator', 'walk'], g.nodeConfigs.n1)).code, 0, 'walk registers the hand-placed file');
  const gone = g.nodes.n1! + '.away';
  await fs.rename(g.nodes.n1!, gone);
  t.teardown(() => fs.rename(gone, g.nodes.n1!).catch(() => undefined));
  let reads = 0;
  for (const [v, data] of model.files) {
    const got = await fs.readFile(path.join(m.mountpoint, v)).catch((e: NodeJS.ErrnoException) => e.code);
    reads++;
    t.ok(Buffer.isBuffer(got) && got.equals(data), `${v} reads right with n1 gone`);
  }
  const lonely = await errnoOf(fs.readFile(path.join(m.mountpoint, 'only-on-n1')));
  t.ok(['EIO', 'ENOENT', 'EHOSTDOWN', 'ENXIO'].includes(lonely), `the file whose only copy was on n1 fails with a clear errno (${lonely})`);
  t.ok((await fs.readdir(m.mountpoint)).length >= 12, 'ls of the root works');
  await fs.writeFile(path.join(m.mountpoint, 'while-gone'), 'written while n1 was gone');
  model.files.set('/while-gone', Buffer.from('written while n1 was gone'));
  await fs.rename(gone, g.nodes.n1!);
  model.files.set('/only-on-n1', Buffer.from('lonely'));
  t.ok(await settle(g, ['n1', 'n2', 'n3']), 'every file at target once n1 is back');
  const fsck = await g.fsck(['--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean', { out: fsck.stdout + fsck.stderr });
  const c = await compareTree(m.mountpoint, model);
  t.ok(treeOk(c), 'the tree reads back right', { check: c });
  figures(t, 'vanished node', { reads, faults: 1, filesVerified: c.verified });
});

t.test('a read-only node: writes go elsewhere, deletes wait for it, nothing corrupt', async (t) => {
  const g = await faultGrid(t, { nodes: 3, mount: { placement: 'ff' } });
  const m = await g.mount();
  const model = new Model();
  for (let i = 0; i < 6; i++) {
    const data = randomBytes(4000 + i);
    await fs.writeFile(path.join(m.mountpoint, `f${i}`), data);
    model.files.set(`/f${i}`, data);
  }
  t.ok(await settle(g, ['n1', 'n2', 'n3']), 'two copies of everything');
  const bind = await sh('mount', ['--bind', g.nodes.n1!, g.nodes.n1!]);
  if (bind.code !== 0) {
    t.comment(`cannot bind-mount (${bind.stderr.trim()}): skipped`);
    return;
  }
  t.teardown(() => sh('umount', ['-l', g.nodes.n1!]));
  t.equal((await sh('mount', ['-o', 'remount,bind,ro', g.nodes.n1!])).code, 0, 'n1 is read-only');
  // new files: ff would pick n1 first; EROFS moves them on
  for (let i = 0; i < 4; i++) {
    const data = randomBytes(3000);
    const r = await errnoOf(fs.writeFile(path.join(m.mountpoint, `new${i}`), data));
    t.equal(r, 'ok', `new${i} written while n1 is read-only`);
    if (r === 'ok') model.files.set(`/new${i}`, data);
  }
  // overwrite and delete files that have a copy on n1
  const data = randomBytes(5000);
  t.equal(await errnoOf(fs.writeFile(path.join(m.mountpoint, 'f0'), data)), 'ok', 'overwrite of a file with a copy on n1');
  model.files.set('/f0', data);
  t.equal(await errnoOf(fs.unlink(path.join(m.mountpoint, 'f1'))), 'ok', 'delete of a file with a copy on n1');
  model.files.delete('/f1');
  t.equal(await errnoOf(fs.rename(path.join(m.mountpoint, 'f2'), path.join(m.mountpoint, 'f2-moved'))), 'ok', 'rename of a file with a copy on n1');
  model.files.set('/f2-moved', model.files.get('/f2')!);
  model.files.delete('/f2');
  const c1 = await compareTree(m.mountpoint, model);
  t.ok(treeOk(c1), 'the tree is right while n1 is read-only', { check: c1 });
  await sh('umount', ['-l', g.nodes.n1!]);
  t.ok(await settle(g, ['n1', 'n2', 'n3']), 'every file at target once n1 is writable');
  const fsck = await g.fsck(['--checksums', '--orphans']);
  t.equal(fsck.code, 0, 'fsck --checksums --orphans clean: pending deletes/renames applied on n1', { out: fsck.stdout + fsck.stderr });
  const c = await compareTree(m.mountpoint, model);
  t.ok(treeOk(c), 'the tree reads back right', { check: c });
  figures(t, 'read-only node', { faults: 1, filesVerified: c.verified });
});

t.test('full nodes (20 MiB loop-mounted ext4 each): ENOSPC to the writer, nothing partial registered', async (t) => {
  const g = await faultGrid(t, { nodes: 2 });
  for (const [name, dir] of Object.entries(g.nodes)) {
    const img = `${dir}.img`;
    await sh('truncate', ['-s', '20M', img]);
    const mk = await sh('mkfs.ext4', ['-q', '-F', img]);
    const mt = mk.code === 0 ? await sh('mount', ['-o', 'loop', img, dir]) : mk;
    if (mt.code !== 0) {
      t.comment(`cannot loop-mount (${mt.stderr.trim()}): skipped`);
      return;
    }
    t.teardown(() => sh('umount', ['-l', dir]));
    await fs.rmdir(path.join(dir, 'lost+found')).catch(() => undefined); // a node folder at a filesystem root would show it in the tree
    await fs.writeFile(path.join(dir, '.ggfs-node'), `${name}\n`);
  }
  const m = await g.mount();
  const model = new Model();
  const codes: Record<string, number> = {};
  for (let i = 0; i < 16; i++) {
    const data = randomBytes(3 * 2 ** 20);
    const r = await errnoOf(fs.writeFile(path.join(m.mountpoint, `big${i}`), data));
    codes[r] = (codes[r] ?? 0) + 1;
    if (r === 'ok') model.files.set(`/big${i}`, data);
    else {
      t.ok(['ENOSPC', 'EDQUOT'].includes(r), `big${i}: a clear errno when every node is full (${r})`);
      // a failed write may leave the name (created) but never registered content that is not what was written
      const rows = await g.store.query<{ size: string }>(`SELECT size FROM files WHERE path = $1 AND deleted_at IS NULL`, [`/big${i}`]);
      t.ok(rows.length === 0 || Number(rows[0]!.size) < data.length, `big${i}: no full-size version registered for a failed write`);
      await fs.unlink(path.join(m.mountpoint, `big${i}`)).catch(() => undefined);
    }
  }
  t.ok((codes.ok ?? 0) >= 4, `some files fit (${JSON.stringify(codes)})`);
  t.ok((codes.ENOSPC ?? 0) + (codes.EDQUOT ?? 0) >= 1, 'and the disks did fill up');
  const c = await compareTree(m.mountpoint, model);
  t.ok(treeOk(c), 'every file that was written reads back right; the failed ones are gone', { check: c });
  const fsck = await g.fsck(['--checksums']);
  t.ok(!/corrupt|wrong size/.test(fsck.stdout.replace(/0 (wrong size|corrupt)/g, '')), 'fsck finds nothing corrupt or of the wrong size', { out: fsck.stdout + fsck.stderr });
  // space freed: writes work again
  const [first] = [...model.files.keys()];
  await fs.unlink(path.join(m.mountpoint, first!));
  model.files.delete(first!);
  const again = randomBytes(2 ** 20);
  t.equal(await errnoOf(fs.writeFile(path.join(m.mountpoint, 'after'), again)), 'ok', 'after a delete a new file fits');
  t.same(await fs.readFile(path.join(m.mountpoint, 'after')), again, 'and reads back right');
  figures(t, 'full nodes', { writes: 17, codes, faults: 2 });
});
