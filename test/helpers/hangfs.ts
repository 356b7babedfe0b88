/**
 * A tiny passthrough FUSE filesystem used by fault tests to make a node
 * folder HANG the way a dead NFS server does: run it as its own process
 * (`node dist/test/helpers/hangfs.js SRC MNT`), then SIGSTOP it — every call
 * under MNT blocks until SIGCONT. Test code only.
 */
import fs from 'node:fs';
import path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
type Cb = (...args: unknown[]) => void;

function errno(err: NodeJS.ErrnoException | null): number {
  if (!err) return 0;
  return -(err.errno ? Math.abs(err.errno) : 5);
}

export function runHangFs(src: string, mnt: string): void {
  const Fuse = require('fuse-native') as new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => { mount(cb: (err: Error | null) => void): void; unmount(cb: (err: Error | null) => void): void };
  const p = (x: string) => path.join(src, x);
  const ops: Record<string, unknown> = {
    getattr: (x: string, cb: Cb) => fs.lstat(p(x), (e, s) => (e ? cb(errno(e)) : cb(0, s))),
    fgetattr: (x: string, fd: number, cb: Cb) => fs.fstat(fd, (e, s) => (e ? cb(errno(e)) : cb(0, s))),
    readdir: (x: string, cb: Cb) => fs.readdir(p(x), (e, names) => (e ? cb(errno(e)) : cb(0, names))),
    open: (x: string, flags: number, cb: Cb) => fs.open(p(x), flags, (e, fd) => (e ? cb(errno(e)) : cb(0, fd))),
    create: (x: string, mode: number, cb: Cb) => fs.open(p(x), fs.constants.O_CREAT | fs.constants.O_RDWR, mode, (e, fd) => (e ? cb(errno(e)) : cb(0, fd))),
    read: (x: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => fs.read(fd, buf, 0, len, pos, (e, n) => cb(e ? errno(e) : n)),
    write: (x: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => fs.write(fd, buf, 0, len, pos, (e, n) => cb(e ? errno(e) : n)),
    release: (x: string, fd: number, cb: Cb) => fs.close(fd, (e) => cb(errno(e))),
    fsync: (x: string, fd: number, d: unknown, cb: Cb) => fs.fsync(fd, (e) => cb(errno(e))),
    flush: (x: string, fd: number, cb: Cb) => cb(0),
    truncate: (x: string, size: number, cb: Cb) => fs.truncate(p(x), size, (e) => cb(errno(e))),
    ftruncate: (x: string, fd: number, size: number, cb: Cb) => fs.ftruncate(fd, size, (e) => cb(errno(e))),
    unlink: (x: string, cb: Cb) => fs.unlink(p(x), (e) => cb(errno(e))),
    rename: (a: string, b: string, cb: Cb) => fs.rename(p(a), p(b), (e) => cb(errno(e))),
    mkdir: (x: string, mode: number, cb: Cb) => fs.mkdir(p(x), mode, (e) => cb(errno(e))),
    rmdir: (x: string, cb: Cb) => fs.rmdir(p(x), (e) => cb(errno(e))),
    chmod: (x: string, mode: number, cb: Cb) => fs.chmod(p(x), mode, (e) => cb(errno(e))),
    chown: (x: string, uid: number, gid: number, cb: Cb) => fs.lchown(p(x), uid, gid, (e) => cb(errno(e))),
    utimens: (x: string, a: Date, m: Date, cb: Cb) => fs.utimes(p(x), a, m, (e) => cb(errno(e))),
    symlink: (target: string, x: string, cb: Cb) => fs.symlink(target, p(x), (e) => cb(errno(e))),
    readlink: (x: string, cb: Cb) => fs.readlink(p(x), (e, t) => (e ? cb(errno(e)) : cb(0, t))),
    statfs: (x: string, cb: Cb) =>
      fs.statfs(src, (e, s) =>
        e ? cb(errno(e)) : cb(0, { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 }),
      ),
  };
  // timeout: false — a frozen process must look like a dead NFS server, not
  // time out by itself
  const fuse = new Fuse(mnt, ops, { force: true, mkdir: true, timeout: false, allowOther: true, fsname: 'hangfs' });
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`hangfs: mount failed: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write('mounted\n');
  });
  const stop = () => fuse.unmount(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const [src, mnt] = process.argv.slice(2);
  if (!src || !mnt) {
    process.stderr.write('usage: hangfs SRC MNT\n');
    process.exit(2);
  }
  runHangFs(src, mnt);
}
