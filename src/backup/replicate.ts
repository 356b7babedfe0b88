/**
 * `geogridfs backup replicate`: follow the change feed from the saved cursor
 * and bring the backup folder in step.
 *
 * Per feed page: every item becomes a task; tasks touching the same local
 * path run in seq order, the rest with bounded concurrency. The cursor
 * advances only to the last seq before the first item not done (failed, or
 * left because of the free-space floor or a long throttle), and only after
 * the page's held files were reported — so a crash or a stop never skips
 * work, and a rerun redoes only what was not finished (items already done
 * are recognised from the local index without downloading).
 *
 * A run with nothing new is one GET of an empty feed page: the local index
 * is not even loaded.
 */
import { symlink, readlink, mkdir, rename, chmod, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import type { FeedItem, FeedPage } from '../meta/feed.js';
import { ApiClient, ThrottledError, HttpError } from './api-client.js';
import { Downloader, FreeSpaceError, SupersededError, sha256File } from './downloader.js';
import { LocalIndex, readCursorState, takeLock, writeCursor, type IndexEntry } from './local-state.js';
import { ensureParents, isOurs, localPathOf, localStat, moveAside, moveToTrash, pruneEmpty, removeLocal, stamp } from './local-files.js';

export type DeletionPolicy = 'keep' | 'trash' | 'delete';

export interface ReplicateOptions {
  client: ApiClient;
  folder: string;
  deletion: DeletionPolicy;
  concurrency: number;
  minFreeBytes: number;
  pageSize?: number;
  log?: Logger;
  /** called about once a second with running totals */
  onProgress?: (s: ReplicateSummary) => void;
  signal?: AbortSignal | undefined;
}

export interface ReplicateSummary {
  pages: number;
  items: number;
  downloaded: number;
  bytes: number;
  resumed: number;
  renamed: number;
  adopted: number;
  unchanged: number;
  deleted: number;
  keptAside: number;
  /** items that changed again before they could be fetched (a later feed entry covers them) */
  superseded: number;
  failed: number;
  held: number;
  heldRejected: number;
  cursorBefore: number;
  cursorAfter: number;
  /** the backup set changed since the last run: the feed was read again from the start */
  rescanned: boolean;
  /** why the run stopped early, if it did */
  stoppedBy: string | null;
  seconds: number;
}

type Outcome = 'done' | 'failed' | 'stopped';

/** items handled at once per allowed download (the rest of an item's work is local disk work) */
const ITEMS_PER_DOWNLOAD = 4;

interface HeldItem {
  id: number;
  version: number;
  checksum: string;
}

/** Runs tasks with bounded concurrency; tasks sharing a key run in submission order. */
class KeyedQueue {
  private tails = new Map<string, Promise<unknown>>();
  private running = 0;
  private waiters: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  private async slot(): Promise<void> {
    while (this.running >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.running++;
  }
  private free(): void {
    this.running--;
    this.waiters.shift()?.();
  }

  run<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const before = keys.map((k) => this.tails.get(k)).filter((p): p is Promise<unknown> => p !== undefined);
    const p = (async () => {
      await Promise.all(before.map((b) => b.catch(() => undefined)));
      await this.slot();
      try {
        return await fn();
      } finally {
        this.free();
      }
    })();
    for (const k of keys) this.tails.set(k, p);
    return p;
  }
}

export class Replicator {
  private readonly log: Logger;
  private readonly downloader: Downloader;
  private index: LocalIndex | null = null;
  private held: HeldItem[] = [];
  private problems: { kind: 'backup-mismatch' | 'backup-unknown-file' | 'other'; path: string; detail: string }[] = [];
  private stop: string | null = null;
  /** parent folders of files placed in this run (known to exist: no lstat walk per file) */
  private readonly knownDirs = new Set<string>();
  readonly summary: ReplicateSummary = {
    pages: 0, items: 0, downloaded: 0, bytes: 0, resumed: 0, renamed: 0, adopted: 0, unchanged: 0, deleted: 0,
    keptAside: 0, superseded: 0, failed: 0, held: 0, heldRejected: 0, cursorBefore: 0, cursorAfter: 0, rescanned: false, stoppedBy: null, seconds: 0,
  };

  constructor(private readonly opts: ReplicateOptions) {
    this.log = opts.log ?? silentLogger;
    this.downloader = new Downloader({ client: opts.client, folder: opts.folder, minFreeBytes: opts.minFreeBytes, concurrency: opts.concurrency, onBytes: (n) => (this.summary.bytes += n) });
  }

  /** Run until the feed is drained (or a stop condition). Takes the folder lock. */
  async run(): Promise<ReplicateSummary> {
    const started = performance.now();
    const release = await takeLock(this.opts.folder);
    const progressTimer = this.opts.onProgress ? setInterval(() => this.opts.onProgress!(this.summary), 1000) : null;
    try {
      const state = await readCursorState(this.opts.folder);
      let cursor = state.seq;
      let generation = state.generation;
      let unsettledWaits = 0;
      this.summary.cursorBefore = cursor;
      this.summary.cursorAfter = cursor;
      for (;;) {
        if (this.opts.signal?.aborted) {
          this.summary.stoppedBy = 'signal';
          break;
        }
        const page = await this.opts.client.json<Omit<FeedPage, 'next'> & { next: string; generation?: string }>('GET', `/api/v1/feed?after=${cursor}&limit=${this.opts.pageSize ?? 1000}`);
        if (page.generation !== undefined && page.generation !== generation) {
          // backup nodes were added or revoked: which files this host holds changed, also
          // below the cursor. Read the whole feed again (files already here are recognised
          // from the index; files no longer ours come as not wanted).
          const first = cursor === 0;
          generation = page.generation;
          if (!first) {
            this.log.info({ cursor }, 'the set of backup nodes changed: reading the change feed again from the start');
            this.summary.rescanned = true;
            cursor = 0;
            await writeCursor(this.opts.folder, 0, generation);
            this.summary.cursorAfter = 0;
            continue;
          }
        }
        if (page.items.length === 0) {
          // a change still being committed holds the feed back: it settles within moments
          if (!page.settled && unsettledWaits++ < 20) {
            await new Promise((r) => setTimeout(r, 250));
            continue;
          }
          break;
        }
        this.summary.pages++;
        this.index ??= await LocalIndex.load(this.opts.folder);
        const done = await this.processPage(page.items);
        await this.downloader.syncDirs();
        await this.index.flush();
        await this.report();
        if (done > cursor) {
          await writeCursor(this.opts.folder, done, generation);
          cursor = done;
          this.summary.cursorAfter = cursor;
        }
        if (this.stop || done < page.items[page.items.length - 1]!.seq) {
          this.summary.stoppedBy = this.stop ?? 'failures (see the log; the next run retries them)';
          break;
        }
        if (!page.more && page.settled) break;
      }
    } finally {
      if (progressTimer) clearInterval(progressTimer);
      await this.downloader.close();
      await this.index?.close();
      await release();
      this.summary.seconds = (performance.now() - started) / 1000;
    }
    return this.summary;
  }

  /** Process one page; returns the seq up to which every item is done. */
  private async processPage(items: FeedItem[]): Promise<number> {
    // more items in progress than downloads: a finished file's verification, fsync and
    // rename overlap the next transfers (the Downloader holds the network to `concurrency`)
    const queue = new KeyedQueue(this.opts.concurrency * ITEMS_PER_DOWNLOAD);
    const inPage = new Set(items.filter((i) => !i.deleted).map((i) => i.id));
    // rename sources per moved file id: tombstones of this page pointing at it
    const sources = new Map<number, string[]>();
    for (const i of items) {
      if (i.deleted && i.renamedTo) sources.set(i.renamedTo.id, [...(sources.get(i.renamedTo.id) ?? []), i.path]);
    }
    const tasks = items.map((item) => {
      this.summary.items++;
      let keys: string[];
      let fn: () => Promise<void>;
      if (!item.deleted && item.wanted) {
        const src = sources.get(item.id) ?? [];
        keys = [item.path, ...src];
        fn = () => this.handleLive(item, src);
      } else if (item.deleted && item.renamedTo && !inPage.has(item.renamedTo.id)) {
        // the moved file is not in this page: act on its current state now
        const t = item.renamedTo;
        const live: FeedItem = { ...item, id: t.id, path: t.path, kind: t.kind, size: t.size, mode: t.mode, mtimeUs: t.mtimeUs, checksum: t.checksum, symlinkTarget: t.symlinkTarget, version: t.version, deleted: false, wanted: t.wanted, renamedTo: null, seq: item.seq };
        keys = [t.path, item.path];
        fn = () => (t.wanted ? this.handleLive(live, [item.path]) : this.handleGone({ ...item, id: t.id }));
      } else if (item.deleted && item.renamedTo) {
        keys = [item.path];
        fn = async () => undefined; // handled by the moved file's own item in this page
      } else {
        keys = [item.path];
        fn = () => this.handleGone(item);
      }
      return queue.run(keys, async (): Promise<Outcome> => {
        if (this.stop) return 'stopped';
        try {
          await fn();
          return 'done';
        } catch (err) {
          if (err instanceof FreeSpaceError || err instanceof ThrottledError) {
            if (!this.stop) this.log.warn({ err: err.message }, 'stopping this run');
            this.stop ??= err instanceof FreeSpaceError ? `free-space floor: ${err.message}` : `throttled by the server for ${(err as ThrottledError).retryAfterSec} s: ${err.message}`;
            return 'stopped';
          }
          if (err instanceof HttpError && err.status === 401) {
            this.stop ??= `the API refused the token: ${err.message}`;
            return 'stopped';
          }
          this.summary.failed++;
          this.log.error({ path: item.path, err: (err as Error).message }, 'backup of this item failed');
          this.problems.push({ kind: 'other', path: item.path, detail: `backup host could not store it (retried next run): ${(err as Error).message}` });
          return 'failed';
        }
      });
    });
    const outcomes = await Promise.all(tasks);
    let done = -1;
    for (let i = 0; i < items.length; i++) {
      if (outcomes[i] !== 'done') break;
      done = items[i]!.seq;
    }
    return done;
  }

  private setEntry(vpath: string, item: FeedItem, st: { s: number; m: string }): void {
    const e: IndexEntry = { id: item.id, version: item.version, c: item.checksum, s: st.s, m: st.m };
    if (item.kind === 'symlink') e.t = item.symlinkTarget ?? '';
    this.index!.set(vpath, e);
  }

  private markHeld(item: FeedItem): void {
    if (item.kind === 'file' && item.checksum) this.held.push({ id: item.id, version: item.version, checksum: item.checksum });
  }

  /** A live file or symlink: make the local copy this version. */
  private async handleLive(item: FeedItem, renameSources: string[]): Promise<void> {
    const local = localPathOf(this.opts.folder, item.path);
    if (!local) {
      this.problems.push({ kind: 'other', path: item.path, detail: 'path collides with the backup agent\'s state folder; not backed up' });
      return;
    }
    const parent = path.dirname(item.path);
    if (!this.knownDirs.has(parent)) {
      await ensureParents(this.opts.folder, item.path, (vp, where) => {
      this.index!.delete(vp);
      this.summary.keptAside++;
        this.problems.push({ kind: 'backup-mismatch', path: vp, detail: `a local file where the grid has a folder; kept aside at ${path.relative(this.opts.folder, where)}` });
      });
      this.knownDirs.add(parent);
    }
    const index = this.index!;
    let st = await localStat(local);
    let e = index.get(item.path);

    if (item.kind === 'symlink') {
      if (st.exists && st.isSymlink && (await readlink(local)) === item.symlinkTarget) {
        this.setEntry(item.path, item, await stamp(local));
        this.summary.unchanged++;
      } else {
        if (st.exists) await this.clearForeign(item.path, local, st, e, 'replaced by a symlink on the grid');
        await mkdir(path.dirname(local), { recursive: true });
        await symlink(item.symlinkTarget ?? '', local);
        this.setEntry(item.path, item, await stamp(local));
        this.summary.downloaded++;
      }
      await this.retireSources(item, renameSources, local);
      return;
    }

    // 1. already here (mode or mtime may have changed on the grid without new content)
    if (isOurs(st, e) && e!.c === item.checksum && st.exists) {
      let touched = false;
      if ((st.mode & 0o7777) !== (item.mode & 0o7777)) {
        await chmod(local, item.mode & 0o7777);
        touched = true;
      }
      const drift = BigInt(st.mtimeNs) - BigInt(item.mtimeUs) * 1000n;
      if (drift > 1000n || drift < -1000n) {
        await utimes(local, item.mtimeUs / 1e6, item.mtimeUs / 1e6);
        touched = true;
      }
      if (touched) this.setEntry(item.path, item, await stamp(local));
      else if (e!.id !== item.id || e!.version !== item.version) this.setEntry(item.path, item, { s: e!.s, m: e!.m });
      this.summary.unchanged++;
      this.markHeld(item);
      await this.retireSources(item, renameSources, local);
      return;
    }
    // 2. renamed on the grid: move our copy instead of downloading
    for (const src of renameSources) {
      const srcLocal = localPathOf(this.opts.folder, src);
      const se = index.get(src);
      if (!srcLocal || !se || se.id !== item.id || se.c !== item.checksum) continue;
      const sst = await localStat(srcLocal);
      if (!isOurs(sst, se)) continue;
      if (st.exists) await this.clearForeign(item.path, local, st, e, 'in the way of a renamed file');
      await mkdir(path.dirname(local), { recursive: true });
      await rename(srcLocal, local);
      await pruneEmpty(this.opts.folder, path.dirname(srcLocal));
      index.delete(src);
      this.setEntry(item.path, item, { s: se.s, m: se.m });
      this.summary.renamed++;
      this.markHeld(item);
      await this.retireSources(item, renameSources, local);
      return;
    }
    // 3. a local file we did not leave (or changed since): adopt it when identical, else keep it aside
    if (st.exists && !isOurs(st, e)) {
      if (st.isFile && st.size === item.size && (await sha256File(local)) === item.checksum) {
        await chmod(local, item.mode & 0o7777);
        await utimes(local, item.mtimeUs / 1e6, item.mtimeUs / 1e6);
        this.setEntry(item.path, item, await stamp(local));
        this.summary.adopted++;
        this.markHeld(item);
        await this.retireSources(item, renameSources, local);
        return;
      }
      await this.clearForeign(item.path, local, st, e, 'the local copy differs from the grid\'s');
      st = { exists: false };
      e = undefined;
    }
    // 4. download (over our own older copy, if any)
    let r;
    try {
      r = await this.downloader.download({ id: item.id, path: item.path, size: item.size, checksum: item.checksum!, mode: item.mode, mtimeUs: item.mtimeUs }, local);
    } catch (err) {
      if (err instanceof SupersededError) {
        // changed, renamed or deleted since this page: a later feed entry carries its new state
        this.summary.superseded++;
        return;
      }
      throw err;
    }
    if (r.resumedFrom > 0) this.summary.resumed++;
    this.setEntry(item.path, item, r.stamp);
    this.summary.downloaded++;
    this.markHeld(item);
    await this.retireSources(item, renameSources, local);
  }

  /** Move a local file that is not ours (or is an old copy) out of the way, reporting it when it was not ours. */
  private async clearForeign(vpath: string, local: string, st: Awaited<ReturnType<typeof localStat>>, e: IndexEntry | undefined, why: string): Promise<void> {
    if (!st.exists) return;
    if (isOurs(st, e)) {
      await removeLocal(this.opts.folder, local);
      this.index!.delete(vpath);
      return;
    }
    const where = await moveAside(this.opts.folder, vpath, local); // a file, a symlink or a whole folder
    this.index!.delete(vpath);
    this.summary.keptAside++;
    this.problems.push({ kind: 'backup-mismatch', path: vpath, detail: `${why}; kept aside at ${path.relative(this.opts.folder, where)}` });
    this.log.warn({ path: vpath, aside: where }, 'local file differs from the grid: kept aside');
  }

  /** After the moved file is in place: the old paths' copies (still ours) are no longer needed. */
  private async retireSources(item: FeedItem, renameSources: string[], dest: string): Promise<void> {
    for (const src of renameSources) {
      const srcLocal = localPathOf(this.opts.folder, src);
      const se = this.index!.get(src);
      if (!srcLocal || srcLocal === dest || !se || se.id !== item.id) continue;
      const sst = await localStat(srcLocal);
      if (!isOurs(sst, se)) {
        this.index!.delete(src);
        continue;
      }
      if (se.c === item.checksum) await removeLocal(this.opts.folder, srcLocal); // a duplicate of what is now at dest
      else await this.applyDeletion(src, srcLocal); // an older content version: the deletion policy decides
      this.index!.delete(src);
    }
  }

  private async applyDeletion(vpath: string, local: string): Promise<void> {
    switch (this.opts.deletion) {
      case 'keep':
        break;
      case 'trash':
        await moveToTrash(this.opts.folder, vpath, local);
        break;
      case 'delete':
        await removeLocal(this.opts.folder, local);
        break;
    }
    this.summary.deleted++;
  }

  /** A deleted (or no longer wanted) file: apply the deletion policy to our copy. */
  private async handleGone(item: FeedItem): Promise<void> {
    const local = localPathOf(this.opts.folder, item.path);
    if (!local) return;
    const e = this.index!.get(item.path);
    if (!e || e.id !== item.id) return; // not ours, or a newer file at that path
    const st = await localStat(local);
    if (isOurs(st, e)) await this.applyDeletion(item.path, local);
    else if (st.exists) this.problems.push({ kind: 'backup-mismatch', path: item.path, detail: 'deleted on the grid; the local copy differs and was kept' });
    this.index!.delete(item.path);
  }

  /** Report held files and problems in batches (before the cursor moves). */
  private async report(): Promise<void> {
    while (this.held.length) {
      const batch = this.held.slice(0, 1000);
      const r = await this.opts.client.json<{ accepted: number; rejected: { id: number; reason: string }[] }>('POST', '/api/v1/held', { items: batch });
      this.held.splice(0, batch.length);
      this.summary.held += r.accepted;
      this.summary.heldRejected += r.rejected.length;
      if (r.rejected.length) this.log.info({ rejected: r.rejected.slice(0, 5), count: r.rejected.length }, 'server did not count some held files (changed since)');
    }
    while (this.problems.length) {
      const batch = this.problems.slice(0, 100);
      await this.opts.client.json('POST', '/api/v1/problems', { items: batch });
      this.problems.splice(0, batch.length);
    }
  }
}
