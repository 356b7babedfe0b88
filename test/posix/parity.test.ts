/**
 * POSIX parity: the same sequence of calls on the mount and on a plain local
 * folder must give the same results and the same errno. Where a merged tree
 * must differ (hard links), the documented errno is asserted instead.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { scratchDir } from '../helpers/db.js';
import { makeGrid, sh } from '../helpers/mount.js';

type Step = [string, () => Promise<unknown>];

async function outcome(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    const v = await fn();
    return { ok: v === undefined ? null : v };
  } catch (err) {
    return { err: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

/** The call sequence, relative to `root`; every result is plain data. */
function steps(root: string): Step[] {
  const p = (x: string) => path.join(root, x);
  const stat = async (x: string) => {
    const s = await fs.lstat(p(x));
    return { type: s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'file', size: s.isDirectory() ? 'dir' : s.size, mode: (s.mode & 0o7777).toString(8) };
  };
  const read = async (x: string) => (await fs.readFile(p(x))).toString('base64');
  const ls = async (x: string) => (await fs.readdir(p(x))).sort();
  return [
    ['create+write', () => fs.writeFile(p('a.txt'), 'hello world')],
    ['stat a', () => stat('a.txt')],
    ['read a', () => read('a.txt')],
    [
      'write at offsets (sparse, overwrite, extend)',
      async () => {
        const fh = await fs.open(p('b.bin'), 'w+');
        await fh.write(Buffer.from('XXXX'), 0, 4, 10);
        await fh.write(Buffer.from('yy'), 0, 2, 2);
        await fh.write(Buffer.alloc(200_000, 7), 0, 200_000, 5000);
        await fh.close();
      },
    ],
    ['stat b', () => stat('b.bin')],
    ['read b', async () => createHash('sha256').update(await fs.readFile(p('b.bin'))).digest('hex')],
    ['append', () => fs.appendFile(p('a.txt'), '+more')],
    ['read a again', () => read('a.txt')],
    ['truncate shrink', () => fs.truncate(p('b.bin'), 100)],
    ['stat b shrunk', () => stat('b.bin')],
    ['truncate grow', () => fs.truncate(p('b.bin'), 5000)],
    ['read b grown', async () => createHash('sha256').update(await fs.readFile(p('b.bin'))).digest('hex')],
    [
      'ftruncate on an open file',
      async () => {
        const fh = await fs.open(p('a.txt'), 'r+');
        await fh.truncate(3);
        await fh.write('ZZ', 5);
        await fh.close();
      },
    ],
    ['read a truncated', () => read('a.txt')],
    ['O_EXCL on existing', () => fs.open(p('a.txt'), 'wx').then((h) => h.close())],
    ['open missing', () => fs.open(p('nope'), 'r').then((h) => h.close())],
    ['mkdir d', () => fs.mkdir(p('d'))],
    ['mkdir d again', () => fs.mkdir(p('d'))],
    ['mkdir in missing parent', () => fs.mkdir(p('no/such'))],
    ['mkdir over a file', () => fs.mkdir(p('a.txt'))],
    ['write in d', () => fs.writeFile(p('d/inner.txt'), 'inner')],
    ['rmdir non-empty', () => fs.rmdir(p('d'))],
    ['unlink a folder', () => fs.unlink(p('d'))],
    ['rmdir a file', () => fs.rmdir(p('a.txt'))],
    ['file as a folder', () => fs.writeFile(p('a.txt/x'), 'x')],
    ['rename over existing file', () => fs.rename(p('b.bin'), p('a.txt'))],
    ['after rename: ls', () => ls('.')],
    ['after rename: read a', async () => (await fs.readFile(p('a.txt'))).length],
    ['rename missing', () => fs.rename(p('b.bin'), p('c.bin'))],
    ['rename file over folder', () => fs.rename(p('a.txt'), p('d'))],
    ['mkdir e', () => fs.mkdir(p('e'))],
    ['rename folder over non-empty folder', () => fs.rename(p('e'), p('d'))],
    ['rename folder over file', () => fs.rename(p('d'), p('a.txt'))],
    ['rename folder into itself', () => fs.rename(p('d'), p('d/sub'))],
    ['rename folder with contents', () => fs.rename(p('d'), p('e2'))],
    ['rename folder over empty folder', () => fs.rename(p('e2'), p('e'))],
    ['ls e', () => ls('e')],
    ['read moved file', () => read('e/inner.txt')],
    ['old folder gone', () => stat('d')],
    ['long name', () => fs.writeFile(p('x'.repeat(256)), 'x')],
    ['long folder name', () => fs.mkdir(p('y'.repeat(300)))],
    ['name of 255 bytes', () => fs.writeFile(p('z'.repeat(255)), 'z')],
    ['symlink', () => fs.symlink('e/inner.txt', p('ln'))],
    ['readlink', () => fs.readlink(p('ln'))],
    ['read through symlink', () => read('ln')],
    ['lstat symlink', () => stat('ln')],
    ['symlink over existing', () => fs.symlink('x', p('ln'))],
    ['readlink of a file', () => fs.readlink(p('a.txt'))],
    ['chmod 0600', () => fs.chmod(p('a.txt'), 0o600)],
    ['stat after chmod', () => stat('a.txt')],
    ['chmod folder 0700', () => fs.chmod(p('e'), 0o700)],
    ['stat folder', () => stat('e')],
    ['chown', () => fs.chown(p('a.txt'), 65534, 65534)],
    ['owner kept', async () => ((s) => [s.uid, s.gid])(await fs.stat(p('a.txt')))],
    ['utimes', () => fs.utimes(p('a.txt'), 1_500_000_000, 1_500_000_000)],
    ['mtime kept', async () => Math.round((await fs.stat(p('a.txt'))).mtimeMs)],
    ['utimes with different atime and mtime', () => fs.utimes(p('a.txt'), 1_400_000_000, 1_500_000_123.5)],
    ['both kept', async () => ((s) => [Math.round(s.atimeMs), Math.round(s.mtimeMs)])(await fs.stat(p('a.txt')))],
    ['touch -m only', async () => (await sh('touch', ['-m', '-d', '2011-11-11 11:11:11Z', p('a.txt')])).code],
    ['mtime changed, atime kept', async () => ((s) => [Math.round(s.atimeMs), Math.round(s.mtimeMs)])(await fs.stat(p('a.txt')))],
    ['touch -a only', async () => (await sh('touch', ['-a', '-d', '2012-12-12 12:12:12Z', p('a.txt')])).code],
    ['atime changed, mtime kept', async () => ((s) => [Math.round(s.atimeMs), Math.round(s.mtimeMs)])(await fs.stat(p('a.txt')))],
    ['unlink', () => fs.unlink(p('a.txt'))],
    ['unlink again', () => fs.unlink(p('a.txt'))],
    ['unlinked is gone', () => stat('a.txt')],
    ['rmdir missing', () => fs.rmdir(p('nothing'))],
    ['rm -r e', () => fs.rm(p('e'), { recursive: true })],
    ['final ls', () => ls('.')],
  ];
}

t.test('the same calls give the same results and errno on the mount and on a local folder', async (t) => {
  const grid = await makeGrid(t);
  const m = await grid.mount();
  const local = await scratchDir('parity-local-');
  const onLocal: unknown[] = [];
  for (const [, fn] of steps(local)) onLocal.push(await outcome(fn));
  const onMount: unknown[] = [];
  for (const [, fn] of steps(m.mountpoint)) onMount.push(await outcome(fn));
  const names = steps(local).map(([n]) => n);
  names.forEach((name, i) => t.same(onMount[i], onLocal[i], name));

  // written at offsets (not sequential): metadata still has the right checksum
  await fs.writeFile(path.join(m.mountpoint, 'check.bin'), 'abc');
  const fh = await fs.open(path.join(m.mountpoint, 'check.bin'), 'r+');
  await fh.write(Buffer.from('Q'), 0, 1, 1);
  await fh.close();
  const rows = await grid.store.query<{ size: number; checksum: string }>(`SELECT size, checksum FROM files WHERE path = '/check.bin' AND deleted_at IS NULL`);
  t.same(rows[0], { size: 3, checksum: createHash('sha256').update('aQc').digest('hex') }, 'checksum recomputed after a non-sequential write');
});

t.test('hard links are refused with EPERM (documented)', async (t) => {
  const grid = await makeGrid(t);
  const m = await grid.mount();
  await fs.writeFile(path.join(m.mountpoint, 'f'), 'x');
  const err = await fs.link(path.join(m.mountpoint, 'f'), path.join(m.mountpoint, 'g')).catch((e: NodeJS.ErrnoException) => e);
  t.equal((err as NodeJS.ErrnoException)?.code, 'EPERM');
});

t.test('permissions are checked for a non-root user (allow_other + default_permissions)', async (t) => {
  const grid = await makeGrid(t);
  const m = await grid.mount(undefined, ['-o', 'allow_other']);
  const local = await scratchDir('perm-local-');
  const asNobody = async (root: string) => {
    await fs.writeFile(path.join(root, 'secret'), 'top');
    await fs.chmod(path.join(root, 'secret'), 0o600);
    await fs.writeFile(path.join(root, 'public'), 'hi');
    await fs.chmod(path.join(root, 'public'), 0o644);
    await fs.mkdir(path.join(root, 'locked'));
    await fs.chmod(path.join(root, 'locked'), 0o755);
    await fs.mkdir(path.join(root, 'open'));
    await fs.chmod(path.join(root, 'open'), 0o777);
    const run = async (script: string) => {
      const r = await sh('runuser', ['-u', 'nobody', '--', 'sh', '-c', script], { cwd: '/' });
      return { code: r.code, out: r.stdout, err: r.stderr.replace(root, 'ROOT').replace(/^sh: \d+: /, '').trim().split(':').pop()?.trim() };
    };
    return [
      await run(`cat ${root}/secret`),
      await run(`cat ${root}/public`),
      await run(`echo x > ${root}/public`),
      await run(`touch ${root}/locked/new`),
      await run(`echo y > ${root}/open/mine && cat ${root}/open/mine`),
      await run(`mkdir ${root}/open/sub && touch ${root}/open/sub/f && ln -s f ${root}/open/sub/l && stat -c '%U:%G %a' ${root}/open/mine ${root}/open/sub ${root}/open/sub/f && echo z >> ${root}/open/mine`),
      await run(`rm ${root}/secret`),
      await run(`ls ${root}/locked`),
    ];
  };
  const local_ = await asNobody(local);
  const mount_ = await asNobody(m.mountpoint);
  t.same(mount_, local_, 'same outcome for user nobody');
  t.equal(local_[0]!.code !== 0, true, 'reading a 0600 root file is refused');
});
