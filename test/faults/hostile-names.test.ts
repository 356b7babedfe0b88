/**
 * The mount given hostile names: too long (ENAMETOOLONG, as a local disk),
 * non-UTF-8 bytes, `..`-looking and shell-hostile names, reserved .ggfs-*
 * names, a name placed by hand on two nodes with different bytes. Each gets
 * a definite answer (works and reads back, or a clear errno), the mount stays
 * up, nothing is written outside the node folders, fsck stays consistent.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid, figures } from './lib.js';

async function tryOp(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );
}

t.test('hostile names through the mount', async (t) => {
  const g = await faultGrid(t, { nodes: 3 });
  const m = await g.mount();
  const before = (await fs.readdir(path.dirname(g.nodes.n1!))).sort();
  const outsideBefore = (await fs.readdir(g.dir)).sort();
  const mp = (name: string) => path.join(m.mountpoint, name);
  let tried = 0;

  // length limits, as on a local disk
  t.equal(await tryOp(fs.writeFile(mp('x'.repeat(255)), 'max')), 'ok', 'a 255-byte name works');
  t.equal((await fs.readFile(mp('x'.repeat(255)), 'utf8')), 'max', 'and reads back');
  t.equal(await tryOp(fs.writeFile(mp('y'.repeat(256)), 'too long')), 'ENAMETOOLONG', 'a 256-byte name: ENAMETOOLONG');
  t.equal(await tryOp(fs.mkdir(mp('z'.repeat(300)))), 'ENAMETOOLONG', 'mkdir of a 300-byte name: ENAMETOOLONG');
  const multibyte = 'é'.repeat(127); // 254 bytes
  t.equal(await tryOp(fs.writeFile(mp(multibyte), 'ok')), 'ok', 'a 254-byte UTF-8 name works');
  t.equal(await tryOp(fs.writeFile(mp('é'.repeat(128)), 'x')), 'ENAMETOOLONG', 'a 256-byte UTF-8 name: ENAMETOOLONG');
  tried += 6;

  // odd but legal names: work and read back
  const odd = ['..a', 'a..', '...', '.. ', ' ..', '-rf', '*', '?[a]', 'new\nline', 'tab\there', 'back\\slash', "quote'\"", '$(reboot)', '\u202eevil.txt', 'A', 'a', 'emoji 😀', '%2e%2e', '.hidden'];
  for (const name of odd) {
    const r = await tryOp(fs.writeFile(mp(name), `content of ${name}`));
    t.equal(r, 'ok', `create ${JSON.stringify(name)}`);
    if (r === 'ok') t.equal(await fs.readFile(mp(name), 'utf8'), `content of ${name}`, `read ${JSON.stringify(name)}`);
    tried++;
  }
  const listing = await fs.readdir(m.mountpoint);
  for (const name of odd) t.ok(listing.includes(name), `${JSON.stringify(name)} is listed`);
  t.equal(new Set(listing).size, listing.length, 'no name listed twice');

  // non-UTF-8 bytes: a definite answer, the mount stays up
  const raw = Buffer.concat([Buffer.from(m.mountpoint + '/'), Buffer.from([0x66, 0xff, 0xfe, 0x80, 0x67])]);
  const rawResult = await tryOp(fs.writeFile(raw, 'latin1 bytes'));
  tried++;
  t.ok(['ok', 'EILSEQ', 'EINVAL', 'EPERM', 'EACCES'].includes(rawResult), `a non-UTF-8 name: works or a clear errno (${rawResult})`);
  if (rawResult === 'ok') t.equal(await fs.readFile(raw, 'utf8'), 'latin1 bytes', 'and reads back under the same bytes');
  t.equal(await tryOp(fs.readdir(m.mountpoint)), 'ok', 'the mount still lists');

  // the replicator's reserved names
  const reserved = await tryOp(fs.writeFile(mp('.ggfs-part-mine'), 'user data'));
  tried++;
  if (reserved === 'ok') {
    t.equal(await fs.readFile(mp('.ggfs-part-mine'), 'utf8'), 'user data', 'a user file with a reserved name reads back');
    t.ok((await fs.readdir(m.mountpoint)).includes('.ggfs-part-mine'), 'and is listed');
  } else t.ok(['EINVAL', 'EPERM', 'EACCES'].includes(reserved), `a reserved .ggfs-* name is refused clearly (${reserved})`);

  // symlinks pointing out: stored as they are, nothing followed on the nodes
  t.equal(await tryOp(fs.symlink('../../../../etc/passwd', mp('escape'))), 'ok', 'a symlink pointing out is created');
  t.equal(await fs.readlink(mp('escape')), '../../../../etc/passwd', 'its target is kept verbatim');
  t.equal(await tryOp(fs.writeFile(mp('escape-dir/x'), 'x')), 'ENOENT', 'no folder is made from nothing');

  // the same name placed by hand on two nodes with different bytes
  await fs.writeFile(path.join(g.nodes.n1!, 'clash.txt'), 'from n1');
  await fs.writeFile(path.join(g.nodes.n2!, 'clash.txt'), 'from n2, longer');
  const l2 = await fs.readdir(m.mountpoint);
  t.equal(l2.filter((n) => n === 'clash.txt').length, 1, 'a name on two nodes is listed once');
  const first = await fs.readFile(mp('clash.txt'), 'utf8');
  const st = await fs.stat(mp('clash.txt'));
  t.ok(['from n1', 'from n2, longer'].includes(first), 'it reads as one of the two, whole (size and bytes from the same node)', { read: first, size: st.size });
  t.equal(st.size, Buffer.byteLength(first), 'its size matches what is read');
  for (const n of ['n1', 'n2']) await g.cli(['replicator', 'walk'], g.nodeConfigs[n]);
  const problems = await g.store.query<{ kind: string }>(`SELECT kind FROM problems WHERE path = '/clash.txt'`);
  t.ok(problems.length >= 1, `walk records the clash as a problem (${problems.map((p) => p.kind).join(', ')})`);
  t.equal(await fs.readFile(path.join(g.nodes.n1!, 'clash.txt'), 'utf8'), 'from n1', 'neither side is overwritten (n1)');
  t.equal(await fs.readFile(path.join(g.nodes.n2!, 'clash.txt'), 'utf8'), 'from n2, longer', 'neither side is overwritten (n2)');

  // nothing outside the node folders
  t.same((await fs.readdir(path.dirname(g.nodes.n1!))).sort(), before, 'nothing new beside the node folders');
  const outsideAfter = (await fs.readdir(g.dir)).sort();
  t.same(outsideAfter.filter((n) => !outsideBefore.includes(n) && !/^mnt\d+$/.test(n)), [], 'nothing new in the grid folder');
  t.ok(m.child.exitCode === null, 'the mount process is still running');
  figures(t, 'hostile names', { names: tried });
});
