/**
 * `geogridfs backup walk -p PATH`: for a backup host that already has files
 * (a copy made by other means). Hashes the local files under PATH, compares
 * them with the server's folder listing, records identical ones in the local
 * index and reports them as held (so `replicate` does not download them
 * again), and reports differing or unknown files as problems. Resumable:
 * files already in the index with unchanged size and mtime are skipped.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { GeoError } from '../util/errors.js';
import type { FolderListing, ListedFile } from '../meta/feed.js';
import { ApiClient, HttpError } from './api-client.js';
import { sha256File } from './downloader.js';
import { LocalIndex, STATE_DIR, takeLock } from './local-state.js';
import { isOurs, localStat, stamp } from './local-files.js';

export interface WalkOptions {
  client: ApiClient;
  folder: string;
  /** local folder to walk: the backup folder or a folder inside it */
  root: string;
  concurrency: number;
  log?: Logger;
  onProgress?: (s: WalkSummary) => void;
  signal?: AbortSignal | undefined;
}

export interface WalkSummary {
  folders: number;
  files: number;
  skipped: number;
  matched: number;
  mismatched: number;
  unknown: number;
  hashedBytes: number;
  held: number;
  seconds: number;
}

export async function walkBackup(opts: WalkOptions): Promise<WalkSummary> {
  const log = opts.log ?? silentLogger;
  const folder = path.resolve(opts.folder);
  const root = path.resolve(opts.root);
  if (root !== folder && !root.startsWith(folder + '/')) throw new GeoError('USAGE', `-p ${opts.root} is not inside the backup folder ${folder}`);
  const started = performance.now();
  const summary: WalkSummary = { folders: 0, files: 0, skipped: 0, matched: 0, mismatched: 0, unknown: 0, hashedBytes: 0, held: 0, seconds: 0 };
  const release = await takeLock(folder);
  const index = await LocalIndex.load(folder);
  const held: { id: number; version: number; checksum: string }[] = [];
  const problems: { kind: 'backup-mismatch' | 'backup-unknown-file'; path: string; detail: string }[] = [];
  const timer = opts.onProgress ? setInterval(() => opts.onProgress!(summary), 1000) : null;

  const flush = async (force: boolean) => {
    if (!force && held.length < 500 && problems.length < 100) return;
    await index.flush();
    while (held.length) {
      const batch = held.splice(0, 1000);
      const r = await opts.client.json<{ accepted: number }>('POST', '/api/v1/held', { items: batch });
      summary.held += r.accepted;
    }
    while (problems.length) await opts.client.json('POST', '/api/v1/problems', { items: problems.splice(0, 100) });
  };

  const listAll = async (vdir: string): Promise<Map<string, ListedFile> | null> => {
    const files = new Map<string, ListedFile>();
    let after: string | null = null;
    for (;;) {
      let page: FolderListing;
      try {
        page = await opts.client.json<FolderListing>('GET', `/api/v1/list?path=${encodeURIComponent(vdir)}&limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      } catch (err) {
        if (err instanceof HttpError && err.status === 404) return null;
        throw err;
      }
      for (const f of page.files) files.set(f.name, f);
      if (!page.nextAfter) return files;
      after = page.nextAfter;
    }
  };

  const walkDir = async (dir: string): Promise<void> => {
    if (opts.signal?.aborted) return;
    const rel = path.relative(folder, dir);
    const vdir = rel === '' ? '/' : '/' + rel.split(path.sep).join('/');
    summary.folders++;
    const remote = await listAll(vdir);
    const entries = await readdir(dir, { withFileTypes: true });
    const files = entries.filter((e) => e.isFile());
    // hash with bounded concurrency
    let next = 0;
    const worker = async () => {
      while (next < files.length && !opts.signal?.aborted) {
        const ent = files[next++]!;
        const local = path.join(dir, ent.name);
        const vpath = vdir === '/' ? `/${ent.name}` : `${vdir}/${ent.name}`;
        summary.files++;
        const st = await localStat(local);
        if (isOurs(st, index.atPath(vpath))) {
          summary.skipped++;
          continue;
        }
        const sf = remote?.get(ent.name);
        if (!sf || sf.kind !== 'file') {
          summary.unknown++;
          problems.push({ kind: 'backup-unknown-file', path: vpath, detail: 'a local file the grid does not have' });
          continue;
        }
        const before = await stamp(local);
        const sum = await sha256File(local);
        summary.hashedBytes += before.s;
        if (sum === sf.checksum && before.s === sf.size) {
          // (a copy of this id recorded at another path stays there, untracked: a walk never deletes)
          index.set({ id: sf.id, p: vpath, version: sf.version, c: sum, ...before });
          summary.matched++;
          if (sf.wanted) held.push({ id: sf.id, version: sf.version, checksum: sum });
        } else {
          summary.mismatched++;
          problems.push({ kind: 'backup-mismatch', path: vpath, detail: `the local copy (sha256 ${sum.slice(0, 16)}…) differs from the grid's version ${sf.version}` });
        }
        await flush(false);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (dir === folder && e.name === STATE_DIR) continue;
      await walkDir(path.join(dir, e.name));
    }
  };

  try {
    await walkDir(root);
    await flush(true);
  } finally {
    if (timer) clearInterval(timer);
    await index.close();
    await release();
    summary.seconds = (performance.now() - started) / 1000;
  }
  log.info({ ...summary }, 'walk finished');
  return summary;
}
