/**
 * Writers for the soak and crash tests: each writer owns one top-level folder
 * (/wN) and, through a mount picked at random for every operation, creates,
 * appends, overwrites, renames (files and folders, also over existing files),
 * deletes, makes and removes folders, and reads back through the other
 * mount. The model records what every successful operation promised.
 *
 * In `tolerant` mode (a fault is injected meanwhile) an operation that fails
 * leaves the paths it touched uncertain: each may end in any of the states
 * before or after the operation (never anything else).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Model, rng, sha256, sleep, type Rng } from './lib.js';

export interface WriterStats {
  ops: number;
  byKind: Record<string, number>;
  errors: { op: string; path: string; code: string; message: string }[];
  staleReads: number;
  badReads: { path: string; mount: string; detail: string }[];
  bytesWritten: number;
}

export interface WriterOptions {
  mounts: () => string[];
  model: Model;
  writers: number;
  seed: number;
  durationMs: number;
  tolerant?: boolean;
  /** stop early when this resolves */
  stop?: () => boolean;
  maxFileBytes?: number;
}

function size(r: Rng, max: number): number {
  const x = r.next();
  if (x < 0.1) return 0;
  if (x < 0.75) return r.int(1, 8192);
  if (x < 0.97) return r.int(8193, Math.min(200_000, max));
  return r.int(200_001, Math.max(200_001, max));
}

/** Read a file through a mount; retried for a few seconds (the kernel's attribute cache may lag a second mount briefly). */
async function readBack(mnt: string, vpath: string, want: Buffer, stats: WriterStats): Promise<void> {
  const deadline = Date.now() + 5_000;
  let first = true;
  for (;;) {
    let detail: string;
    try {
      const got = await fs.readFile(path.join(mnt, vpath));
      if (got.equals(want)) return;
      detail = `read ${got.length} bytes (sha ${sha256(got).slice(0, 12)}), want ${want.length} (sha ${sha256(want).slice(0, 12)})`;
    } catch (err) {
      detail = (err as NodeJS.ErrnoException).code ?? String(err);
    }
    if (first) stats.staleReads++;
    first = false;
    if (Date.now() > deadline) {
      stats.badReads.push({ path: vpath, mount: mnt, detail });
      return;
    }
    await sleep(200);
  }
}

export async function runWriters(o: WriterOptions): Promise<WriterStats> {
  const stats: WriterStats = { ops: 0, byKind: {}, errors: [], staleReads: 0, badReads: [], bytesWritten: 0 };
  const m = o.model;
  const end = Date.now() + o.durationMs;
  const maxBytes = o.maxFileBytes ?? 1_200_000;
  // the writers' own folders, made through the first mount
  for (let w = 0; w < o.writers; w++) {
    const d = `/w${w}`;
    if (!m.dirs.has(d)) {
      await fs.mkdir(path.join(o.mounts()[0]!, d));
      m.dirs.add(d);
    }
  }
  const one = async (w: number) => {
    const r = rng(o.seed * 1000 + w);
    const root = `/w${w}`;
    let n = 0;
    const mine = () => [...m.files.keys()].filter((p) => p.startsWith(root + '/') && !m.uncertain.has(p));
    const myDirs = () => [...m.dirs].filter((p) => (p === root || p.startsWith(root + '/')) && !m.uncertainDirs.has(p));
    while (Date.now() < end && !(o.stop?.() ?? false)) {
      const mounts = o.mounts();
      if (mounts.length === 0) break;
      const mnt = r.pick(mounts);
      const other = r.pick(mounts);
      const files = mine();
      const dirs = myDirs();
      const x = r.next();
      let kind: string;
      if (files.length < 5 || x < 0.25) kind = 'create';
      else if (x < 0.35) kind = 'append';
      else if (x < 0.45) kind = 'overwrite';
      else if (x < 0.55) kind = 'rename';
      else if (x < 0.62) kind = 'delete';
      else if (x < 0.68) kind = dirs.length < 8 ? 'mkdir' : 'rmdir';
      else if (x < 0.72) kind = 'rmdir';
      else if (x < 0.74 && !o.tolerant) kind = 'dirrename';
      else kind = 'read';
      const touched: { p: string; before: Buffer | null; after: Buffer | null }[] = [];
      let touchedDir: string | null = null;
      let moved = '';
      const P = (v: string) => path.join(mnt, v);
      try {
        switch (kind) {
          case 'create': {
            const dir = r.pick(dirs);
            const v = `${dir}/f${w}-${n++}${r.chance(0.1) ? ' with space ☕' : ''}`;
            const data = r.bytes(size(r, maxBytes));
            touched.push({ p: v, before: m.files.get(v) ?? null, after: data });
            await fs.writeFile(P(v), data);
            m.files.set(v, data);
            stats.bytesWritten += data.length;
            break;
          }
          case 'append': {
            const v = r.pick(files);
            const add = r.bytes(r.int(1, 20_000));
            const after = Buffer.concat([m.files.get(v)!, add]);
            touched.push({ p: v, before: m.files.get(v)!, after });
            await fs.appendFile(P(v), add);
            m.files.set(v, after);
            stats.bytesWritten += add.length;
            break;
          }
          case 'overwrite': {
            const v = r.pick(files);
            const data = r.bytes(size(r, maxBytes));
            touched.push({ p: v, before: m.files.get(v)!, after: data });
            await fs.writeFile(P(v), data);
            m.files.set(v, data);
            stats.bytesWritten += data.length;
            break;
          }
          case 'rename': {
            const from = r.pick(files);
            const to = r.chance(0.3) && files.length > 1 ? r.pick(files.filter((f) => f !== from)) : `${r.pick(dirs)}/r${w}-${n++}`;
            const data = m.files.get(from)!;
            touched.push({ p: from, before: data, after: null }, { p: to, before: m.files.get(to) ?? null, after: data });
            moved = `${from} -> ${to}`;
            await fs.rename(P(from), P(to));
            m.files.delete(from);
            m.files.set(to, data);
            break;
          }
          case 'delete': {
            const v = r.pick(files);
            touched.push({ p: v, before: m.files.get(v)!, after: null });
            await fs.unlink(P(v));
            m.files.delete(v);
            break;
          }
          case 'mkdir': {
            const parent = r.pick(dirs.filter((d) => d.split('/').length < 5));
            const v = `${parent}/d${w}-${n++}`;
            touchedDir = v;
            await fs.mkdir(P(v));
            m.dirs.add(v);
            break;
          }
          case 'rmdir': {
            const empty = dirs.filter((d) => d !== root && m.childrenOf(d).length === 0);
            if (!empty.length) {
              kind = 'read';
              break;
            }
            const v = r.pick(empty);
            touchedDir = v;
            await fs.rmdir(P(v));
            m.dirs.delete(v);
            break;
          }
          case 'dirrename': {
            const movable = dirs.filter((d) => d !== root);
            if (!movable.length) {
              kind = 'read';
              break;
            }
            const from = r.pick(movable);
            const targets = dirs.filter((d) => d !== from && !d.startsWith(from + '/') && d.split('/').length < 5);
            const to = `${r.pick(targets)}/m${w}-${n++}`;
            moved = `${from} -> ${to}`;
            await fs.rename(P(from), P(to));
            m.renameDir(from, to);
            break;
          }
        }
        if (kind === 'read' && files.length) {
          const v = r.pick(files);
          if (m.files.has(v)) await readBack(other, v, m.files.get(v)!, stats);
        }
        stats.ops++;
        stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
        const via = mounts.length > 1 ? `mnt${mounts.indexOf(mnt)}` : 'mnt';
        if (kind !== 'read') m.trace.push(`${new Date().toISOString().slice(11, 23)} w${w} ${kind} via ${via}: ${moved || touchedDir || touched.map((x) => x.p).join(' ')}`);
        for (const x of touched) m.note(x.p, `${kind} via ${via}: ${x.after === null ? 'gone' : `${x.after.length} bytes sha ${sha256(x.after).slice(0, 10)}`}`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        stats.errors.push({ op: kind, path: touched[0]?.p ?? '', code: e.code ?? '', message: e.message });
        if (!o.tolerant) continue;
        for (const t of touched) {
          const states = m.uncertain.get(t.p) ?? [t.before];
          states.push(t.after);
          m.uncertain.set(t.p, states);
          m.files.delete(t.p);
        }
        // a folder operation that failed: that folder may or may not exist
        if (touchedDir) m.uncertainDirs.add(touchedDir);
        await sleep(100);
      }
    }
  };
  await Promise.all(Array.from({ length: o.writers }, (_, w) => one(w)));
  return stats;
}
