/**
 * Local file operations of the backup agent that keep the folder and the
 * local index in step: whether a local file is still the one the agent left,
 * moving aside, trashing, deleting (pruning emptied folders).
 */
import { lstat, mkdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { onNode, normalizeVirtualPath } from '../util/vpath.js';
import { STATE_DIR, statePaths, type IndexEntry } from './local-state.js';

/** The local path of a virtual path; null for paths the agent must not touch (its state folder). */
export function localPathOf(folder: string, vpath: string): string | null {
  const v = normalizeVirtualPath(vpath);
  if (v === `/${STATE_DIR}` || v.startsWith(`/${STATE_DIR}/`)) return null;
  return onNode(folder, v);
}

export type LocalStat = { exists: false } | { exists: true; isFile: boolean; isSymlink: boolean; size: number; mtimeNs: string; mode: number };

export async function localStat(p: string): Promise<LocalStat> {
  try {
    const s = await lstat(p, { bigint: true });
    return { exists: true, isFile: s.isFile(), isSymlink: s.isSymbolicLink(), size: Number(s.size), mtimeNs: String(s.mtimeNs), mode: Number(s.mode) & 0o7777 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return { exists: false };
    throw err;
  }
}

/** Where the copy an index entry describes sits now (its path, or the displaced area). */
export function copyPathOf(folder: string, e: IndexEntry): string | null {
  return e.h ? path.join(statePaths(folder).displaced, String(e.id)) : localPathOf(folder, e.p);
}

/** True when the local file is exactly what the agent left there (size and mtime as recorded). */
export function isOurs(st: LocalStat, e: IndexEntry | undefined): boolean {
  if (!e || !st.exists) return false;
  if (e.t !== undefined) return st.isSymlink;
  return st.isFile && st.size === e.s && st.mtimeNs === e.m;
}

/** mtime (ns, decimal) and size of a file as the index records them. */
export async function stamp(p: string): Promise<{ s: number; m: string }> {
  const s = await lstat(p, { bigint: true });
  return { s: Number(s.size), m: String(s.mtimeNs) };
}

/** Remove empty folders from `dir` up to (not including) the backup folder. */
export async function pruneEmpty(folder: string, dir: string): Promise<void> {
  let d = dir;
  const root = path.resolve(folder);
  while (d.startsWith(root + '/') && d !== root) {
    try {
      await rmdir(d);
    } catch {
      return;
    }
    d = path.dirname(d);
  }
}

function stampNow(): string {
  return new Date().toISOString().replace(/[:.]/g, '').replace('T', '-').slice(0, 17);
}

/** Move a local file under `.geogridfs/<kind>/<date>/<vpath>`; returns where it went. */
async function moveUnder(folder: string, kind: 'trash' | 'aside', vpath: string, local: string): Promise<string> {
  const sp = statePaths(folder);
  const base = kind === 'trash' ? path.join(sp.trash, new Date().toISOString().slice(0, 10)) : path.join(sp.aside, stampNow());
  let target = onNode(base, vpath);
  if ((await localStat(target)).exists) target = `${target}.${Date.now()}`;
  await mkdir(path.dirname(target), { recursive: true });
  await rename(local, target);
  await pruneEmpty(folder, path.dirname(local));
  return target;
}

export const moveToTrash = (folder: string, vpath: string, local: string) => moveUnder(folder, 'trash', vpath, local);
export const moveAside = (folder: string, vpath: string, local: string) => moveUnder(folder, 'aside', vpath, local);

/**
 * Rename `src` to `dest`, creating dest's folders (again, when another task
 * pruned an emptied folder meanwhile).
 */
export async function moveInto(src: string, dest: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await mkdir(path.dirname(dest), { recursive: true });
    try {
      await rename(src, dest);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 2 || !(await localStat(src)).exists) throw err;
    }
  }
}

export async function removeLocal(folder: string, local: string): Promise<void> {
  const s = await lstat(local).catch(() => null);
  if (s?.isDirectory()) return; // never a folder
  await rm(local, { force: true });
  await pruneEmpty(folder, path.dirname(local));
}

/**
 * Make sure the folders above `vpath` exist locally. A file (or symlink) at
 * a path where the grid now has a folder is handed to `inTheWay`, which must
 * move it away.
 */
export async function ensureParents(folder: string, vpath: string, inTheWay: (vp: string, local: string) => Promise<void>): Promise<void> {
  const parts = vpath.split('/').slice(1, -1);
  let vp = '';
  for (const part of parts) {
    vp += '/' + part;
    const local = onNode(folder, vp);
    const st = await localStat(local);
    if (st.exists && (st.isFile || st.isSymlink)) await inTheWay(vp, local);
    if (!st.exists || st.isFile || st.isSymlink) await mkdir(local, { recursive: true });
  }
}
