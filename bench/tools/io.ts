/**
 * The bench's I/O tool: one process per workload per target, the same code
 * for every target, so bare folder, mergerfs and GeoGridFS are driven
 * identically. Plain synchronous system calls, one at a time, as an ordinary
 * program does. Prints one JSON line: { op, ms, count, bytes } where `ms`
 * covers the file system calls only (not Node's start-up).
 *
 *   io seqwrite FILE BYTES BLOCK      write, fdatasync, close
 *   io seqread FILE BLOCK             read to the end
 *   io create DIR COUNT SIZE          create+write+close COUNT files f0000000..
 *   io stat DIR COUNT [PREFIX]        lstat each file
 *   io read DIR COUNT SIZE            open+read+close each file
 *   io rename DIR COUNT               rename f* -> g*
 *   io unlink DIR COUNT [PREFIX]      unlink each file
 *   io statlist LIST                  lstat each path listed (one per line)
 *   io listdirs LIST                  readdir each folder listed
 *   io mktree SPEC ROOT...            set-up: create the files of SPEC (lines "relpath<TAB>size") under each ROOT, same bytes
 *   io mkflat DIR COUNT PERDIR TEXT   set-up: COUNT files dNNNN/fNNNNNNN holding TEXT, PERDIR per folder
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';

const [op, ...args] = process.argv.slice(2);

function name(prefix: string, i: number): string {
  return prefix + String(i).padStart(7, '0');
}

function pattern(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  randomFillSync(b);
  return b;
}

function time(fn: () => { count: number; bytes: number }): void {
  const t0 = process.hrtime.bigint();
  const r = fn();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ op, ms, ...r }) + '\n');
}

function writeAll(fd: number, buf: Buffer, len: number): void {
  let off = 0;
  while (off < len) off += fs.writeSync(fd, buf, off, len - off);
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
}

switch (op) {
  case 'seqwrite': {
    const [file, bytesS, blockS] = args as [string, string, string];
    const bytes = Number(bytesS);
    const block = Number(blockS);
    const buf = pattern(block);
    time(() => {
      const fd = fs.openSync(file, 'w');
      let done = 0;
      while (done < bytes) {
        const n = Math.min(block, bytes - done);
        buf.writeUInt32LE(done >>> 0, 0); // blocks differ from each other
        writeAll(fd, buf, n);
        done += n;
      }
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      return { count: 1, bytes };
    });
    break;
  }
  case 'seqread': {
    const [file, blockS] = args as [string, string];
    const buf = Buffer.allocUnsafe(Number(blockS));
    time(() => {
      const fd = fs.openSync(file, 'r');
      let total = 0;
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        total += n;
      }
      fs.closeSync(fd);
      return { count: 1, bytes: total };
    });
    break;
  }
  case 'create': {
    const [dir, countS, sizeS] = args as [string, string, string];
    const count = Number(countS);
    const size = Number(sizeS);
    const buf = pattern(size + count * 8);
    fs.mkdirSync(dir, { recursive: true });
    time(() => {
      for (let i = 0; i < count; i++) {
        const fd = fs.openSync(path.join(dir, name('f', i)), 'wx', 0o644);
        let off = 0;
        while (off < size) off += fs.writeSync(fd, buf, i * 8 + off, size - off);
        fs.closeSync(fd);
      }
      return { count, bytes: count * size };
    });
    break;
  }
  case 'stat': {
    const [dir, countS, prefix = 'f'] = args as [string, string, string?];
    const count = Number(countS);
    time(() => {
      let bytes = 0;
      for (let i = 0; i < count; i++) bytes += fs.lstatSync(path.join(dir, name(prefix, i))).size;
      return { count, bytes };
    });
    break;
  }
  case 'read': {
    const [dir, countS, sizeS] = args as [string, string, string];
    const count = Number(countS);
    const buf = Buffer.allocUnsafe(Math.max(Number(sizeS), 4096) + 1);
    time(() => {
      let bytes = 0;
      for (let i = 0; i < count; i++) {
        const fd = fs.openSync(path.join(dir, name('f', i)), 'r');
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, null);
          if (n === 0) break;
          bytes += n;
        }
        fs.closeSync(fd);
      }
      return { count, bytes };
    });
    break;
  }
  case 'rename': {
    const [dir, countS] = args as [string, string];
    const count = Number(countS);
    time(() => {
      for (let i = 0; i < count; i++) fs.renameSync(path.join(dir, name('f', i)), path.join(dir, name('g', i)));
      return { count, bytes: 0 };
    });
    break;
  }
  case 'unlink': {
    const [dir, countS, prefix = 'g'] = args as [string, string, string?];
    const count = Number(countS);
    time(() => {
      for (let i = 0; i < count; i++) fs.unlinkSync(path.join(dir, name(prefix, i)));
      return { count, bytes: 0 };
    });
    break;
  }
  case 'statlist': {
    const paths = lines(args[0]!);
    time(() => {
      let bytes = 0;
      for (const p of paths) bytes += fs.lstatSync(p).size;
      return { count: paths.length, bytes };
    });
    break;
  }
  case 'listdirs': {
    const dirs = lines(args[0]!);
    time(() => {
      let entries = 0;
      for (const d of dirs) entries += fs.readdirSync(d).length;
      return { count: dirs.length, bytes: entries };
    });
    break;
  }
  case 'mktree': {
    const [spec, ...roots] = args as [string, ...string[]];
    const files = lines(spec).map((l) => {
      const [rel, size] = l.split('\t') as [string, string];
      return { rel, size: Number(size) };
    });
    const max = Math.max(0, ...files.map((f) => f.size));
    const window = Math.min(max, 1 << 20);
    // a fixed random pattern; each block is a slice of it stamped with (file, offset): every
    // file and every MiB differ, and each root gets exactly the same bytes
    const base = pattern(window + files.length * 8 + 8);
    const work = Buffer.allocUnsafe(Math.max(window, 8));
    const made = new Set<string>();
    time(() => {
      let bytes = 0;
      for (const root of roots) {
        files.forEach((f, i) => {
          const target = path.join(root, f.rel);
          const dir = path.dirname(target);
          if (!made.has(dir)) {
            fs.mkdirSync(dir, { recursive: true });
            made.add(dir);
          }
          const fd = fs.openSync(target, 'w', 0o644);
          let off = 0;
          while (off < f.size) {
            const n = Math.min(window, f.size - off);
            base.copy(work, 0, i * 8, i * 8 + n);
            if (n >= 8) {
              work.writeUInt32LE(i, 0);
              work.writeUInt32LE(off >>> 0, 4);
            }
            writeAll(fd, work, n);
            off += n;
          }
          fs.closeSync(fd);
          bytes += f.size;
        });
      }
      return { count: files.length * roots.length, bytes };
    });
    break;
  }
  case 'mkflat': {
    const [dir, countS, perDirS, text] = args as [string, string, string, string];
    const count = Number(countS);
    const perDir = Number(perDirS);
    time(() => {
      for (let i = 0; i < count; i++) {
        const sub = path.join(dir, `d${String(Math.floor(i / perDir)).padStart(4, '0')}`);
        if (i % perDir === 0) fs.mkdirSync(sub, { recursive: true });
        fs.writeFileSync(path.join(sub, name('f', i)), text);
      }
      return { count, bytes: count * Buffer.byteLength(text) };
    });
    break;
  }
  default:
    process.stderr.write(`io: unknown operation ${op}\n`);
    process.exit(2);
}
