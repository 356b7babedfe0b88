/**
 * `geogridfs backup replicate`: follow the change feed from the saved cursor
 * and bring the backup folder in step.
 *
 * Per feed page: every item becomes a task; tasks touching the same local
 * path or file id run in seq order, the rest with bounded concurrency. What
 * the agent holds is tracked by grid file id (stable across renames, also
 * folder renames, which the feed shows only as each file's new path): an
 * item for a known id moves or deletes our copy wherever we hold it. The cursor
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
import { Downloader, FreeSpaceError, SupersededError, sha256File, type Turn } from './downloader.js';
import { LocalIndex, migrateIndex, readCursorState, statePaths, takeLock, writeCursor, type IndexEntry } from './local-state.js';
import { copyPathOf, ensureParents, moveInto, isOurs, localPathOf, localStat, type LocalStat, moveAside, moveToTrash, pruneEmpty, removeLocal, stamp } from './local-files.js';

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
  /** copies of ours moved out of the way of another file, to be placed by their own later feed item */
  displaced: number;
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
    keptAside: 0, displaced: 0, superseded: 0, failed: 0, held: 0, heldRejected: 0, cursorBefore: 0, cursorAfter: 0, rescanned: false, stoppedBy: null, seconds: 0,
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
      const migrated = await migrateIndex(this.opts.folder);
      if (migrated) {
        // the old index was keyed by path: read the whole feed once to settle what it missed
        this.summary.rescanned = true;
        this.log.info({ entries: migrated.entries, untracked: migrated.untracked.length }, 'local index converted to file ids; reading the change feed again from the start');
        if (migrated.untracked.length) this.log.warn({ paths: migrated.untracked.slice(0, 20) }, 'copies of a file already held at another path: left in place, no longer tracked');
      }
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
    const index = this.index!;
    const tasks = items.map((item) => {
      this.summary.items++;
      // Work is by file id: a feed item is the file's latest state, and the index says
      // where (under which path) we hold that id. A rename tombstone is a row of its own
      // (an id never held): the moved file's own item, always later in the feed, moves
      // our copy; a subtree move carries no per-file rename at all and needs none.
      // Tasks touching the same local path (where the item goes, where we hold it) or
      // the same id run in seq order.
      const held = index.get(item.id);
      const gone = item.deleted || !item.wanted;
      let keys: string[];
      let fn: (turn: Turn) => Promise<void>;
      if (gone && !held) {
        keys = [];
        fn = async () => undefined; // not ours (or a rename tombstone): nothing here to change
      } else {
        keys = [`p:${item.path}`, `i:${item.id}`];
        if (held && !held.h && held.p !== item.path) keys.push(`p:${held.p}`);
        fn = gone ? () => this.handleGone(item) : (turn) => this.handleLive(item, turn);
      }
      return queue.run(keys, async (): Promise<Outcome> => {
        // its place in line for a download slot, taken when the item starts (items start in feed order
        // unless one waits for an earlier item on the same path) and passed when done, whatever happened:
        // a small file does not overtake a big one while the big one's local checks run
        const turn = this.downloader.takeTurn();
        try {
          if (this.stop) return 'stopped';
          await fn(turn);
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
        } finally {
          turn.pass();
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
    const e: IndexEntry = { id: item.id, p: vpath, version: item.version, c: item.checksum, s: st.s, m: st.m };
    if (item.kind === 'symlink') e.t = item.symlinkTarget ?? '';
    this.index!.set(e);
  }

  private markHeld(item: FeedItem): void {
    if (item.kind === 'file' && item.checksum) this.held.push({ id: item.id, version: item.version, checksum: item.checksum });
  }

  /**
   * Something at `vpath` must make room for another file (or a folder): a
   * copy of ours (of another file id) is moved to the displaced area, where
   * its own later feed item finds it; a kept copy (keep policy) goes to the
   * dated trash; anything else is kept aside and reported.
   */
  private async makeRoom(vpath: string, local: string, why: string): Promise<void> {
    const st = await localStat(local);
    if (!st.exists) return;
    const index = this.index!;
    const e = index.atPath(vpath);
    if (e && isOurs(st, e)) {
      if (e.k) {
        await moveToTrash(this.opts.folder, vpath, local);
        index.delete(e.id);
        this.log.info({ path: vpath }, 'a kept copy of a deleted file moved to the trash to make room');
        return;
      }
      const to = path.join(statePaths(this.opts.folder).displaced, String(e.id));
      await mkdir(path.dirname(to), { recursive: true });
      await rename(local, to);
      index.set({ ...e, h: 1 });
      this.summary.displaced++;
      return;
    }
    if (e) index.delete(e.id); // changed by someone else since we left it: no longer ours
    const where = await moveAside(this.opts.folder, vpath, local); // a file, a symlink or a whole folder
    this.summary.keptAside++;
    this.problems.push({ kind: 'backup-mismatch', path: vpath, detail: `${why}; kept aside at ${path.relative(this.opts.folder, where)}` });
    this.log.warn({ path: vpath, aside: where }, 'local file differs from the grid: kept aside');
  }

  /**
   * Where the copy of `e` is: its recorded place, or the displaced area when
   * a run stopped between moving it there and saving the index.
   */
  private async locate(e: IndexEntry): Promise<{ e: IndexEntry; src: string | null; st: LocalStat }> {
    const src = copyPathOf(this.opts.folder, e);
    const st = src ? await localStat(src) : ({ exists: false } as const);
    if (!e.h && !isOurs(st, e)) {
      const displaced: IndexEntry = { ...e, h: 1 };
      const alt = copyPathOf(this.opts.folder, displaced)!;
      const ast = await localStat(alt);
      if (isOurs(ast, displaced)) return { e: displaced, src: alt, st: ast };
    }
    return { e, src, st };
  }

  /** Give our copy at `local` the item's mode and mtime when they changed on the grid without new content. */
  private async settleAttributes(item: FeedItem, local: string, st: Awaited<ReturnType<typeof localStat>>, e: IndexEntry): Promise<void> {
    if (!st.exists) return;
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
    else if (e.version !== item.version || e.k) this.setEntry(item.path, item, { s: e.s, m: e.m });
  }

  /** A live file or symlink: make the local copy at its path this version, moving ours from where we hold it. */
  private async handleLive(item: FeedItem, turn: Turn): Promise<void> {
    const local = localPathOf(this.opts.folder, item.path);
    if (!local) {
      this.problems.push({ kind: 'other', path: item.path, detail: 'path collides with the backup agent\'s state folder; not backed up' });
      return;
    }
    const index = this.index!;
    const parent = path.dirname(item.path);
    if (!this.knownDirs.has(parent)) {
      await ensureParents(this.opts.folder, item.path, (vp, where) => this.makeRoom(vp, where, 'a local file where the grid has a folder'));
      this.knownDirs.add(parent);
    }
    // another file of ours at this path (it was moved or deleted on the grid): out of the way
    const occupant = index.atPath(item.path);
    if (occupant && occupant.id !== item.id) await this.makeRoom(item.path, local, 'in the way of a file of the grid');

    let st = await localStat(local);
    let e = index.get(item.id);
    let moved = false;

    // our copy of this file is elsewhere (renamed on the grid, its folder renamed, or displaced): move it here
    if (e && (e.h || e.p !== item.path)) {
      const found = await this.locate(e);
      e = found.e;
      const src = found.src;
      const sst = found.st;
      if (src && isOurs(sst, e) && (item.kind === 'symlink') === (e.t !== undefined)) {
        if (st.exists) await this.makeRoom(item.path, local, 'in the way of a renamed file');
        await moveInto(src, local);
        if (!e.h) await pruneEmpty(this.opts.folder, path.dirname(src));
        e = { ...e, p: item.path };
        delete e.h;
        index.set(e);
        this.summary.renamed++;
        moved = true;
        st = await localStat(local);
      } else {
        if (sst.exists && src && !e.h) {
          if (isOurs(sst, e)) await removeLocal(this.opts.folder, src); // a symlink that became a file or back: made anew below
          else this.problems.push({ kind: 'backup-mismatch', path: e.p, detail: `renamed on the grid to ${item.path}; the local copy differs and was left where it is` });
        }
        index.delete(item.id);
        e = undefined;
      }
    }

    if (item.kind === 'symlink') {
      if (st.exists && st.isSymlink && (await readlink(local)) === item.symlinkTarget) {
        if (!e || e.k || e.version !== item.version || e.t !== item.symlinkTarget) this.setEntry(item.path, item, await stamp(local));
        if (!moved) this.summary.unchanged++;
      } else {
        if (st.exists) {
          if (e && isOurs(st, e)) await removeLocal(this.opts.folder, local);
          else await this.makeRoom(item.path, local, 'replaced by a symlink on the grid');
        }
        await mkdir(path.dirname(local), { recursive: true });
        await symlink(item.symlinkTarget ?? '', local);
        this.setEntry(item.path, item, await stamp(local));
        this.summary.downloaded++;
      }
      return;
    }

    // 1. already here (mode or mtime may have changed on the grid without new content)
    if (e && isOurs(st, e) && e.c === item.checksum) {
      await this.settleAttributes(item, local, st, e);
      if (!moved) this.summary.unchanged++;
      this.markHeld(item);
      return;
    }
    // 2. a local file we did not leave (or changed since): adopt it when identical, else keep it aside
    if (st.exists && !isOurs(st, e)) {
      if (st.isFile && st.size === item.size && (await sha256File(local)) === item.checksum) {
        await chmod(local, item.mode & 0o7777);
        await utimes(local, item.mtimeUs / 1e6, item.mtimeUs / 1e6);
        this.setEntry(item.path, item, await stamp(local));
        this.summary.adopted++;
        this.markHeld(item);
        return;
      }
      await this.makeRoom(item.path, local, 'the local copy differs from the grid\'s');
    }
    // 3. download (over our own older copy, if any)
    let r;
    try {
      // the index entry is written before the rename: a kill in between leaves no copy the index does not know
      r = await this.downloader.download({ id: item.id, path: item.path, size: item.size, checksum: item.checksum!, mode: item.mode, mtimeUs: item.mtimeUs }, local, turn, async (st) => {
        this.setEntry(item.path, item, st);
        await this.index!.writeNow();
      });
    } catch (err) {
      if (err instanceof SupersededError) {
        // changed, renamed or deleted since this page: a later feed entry carries its new state
        this.summary.superseded++;
        return;
      }
      throw err;
    }
    if (r.resumedFrom > 0) this.summary.resumed++;
    this.summary.downloaded++;
    this.markHeld(item);
  }

  /**
   * A deleted (or no longer wanted) file: apply the deletion policy to our
   * copy, wherever we hold it (the grid's last path may differ from ours:
   * its folder was renamed since, or it was displaced). Trash and kept
   * copies go under the grid's last path (a kept copy to the trash when
   * another file is at that path).
   */
  private async handleGone(item: FeedItem): Promise<void> {
    const index = this.index!;
    const held = index.get(item.id);
    if (!held || held.k) return; // not ours, or already kept
    const { e, src: local, st } = await this.locate(held);
    if (!local || !isOurs(st, e)) {
      if (st.exists) this.problems.push({ kind: 'backup-mismatch', path: e.p, detail: 'deleted on the grid; the local copy differs and was kept' });
      index.delete(item.id);
      return;
    }
    switch (this.opts.deletion) {
      case 'keep': {
        // kept where the grid last had it (its folder may have been renamed since we placed it)
        const last = localPathOf(this.opts.folder, item.path);
        if (!e.h && e.p === item.path) {
          index.set({ ...e, k: 1 });
        } else if (last && !index.atPath(item.path) && !(await localStat(last)).exists) {
          await moveInto(local, last);
          if (!e.h) await pruneEmpty(this.opts.folder, path.dirname(local));
          const kept: IndexEntry = { ...e, p: item.path, k: 1 };
          delete kept.h;
          index.set(kept);
        } else {
          await moveToTrash(this.opts.folder, item.path, local); // another file is there now
          index.delete(item.id);
        }
        break;
      }
      case 'trash':
        await moveToTrash(this.opts.folder, item.path, local);
        index.delete(item.id);
        break;
      case 'delete':
        await removeLocal(this.opts.folder, local);
        index.delete(item.id);
        break;
    }
    this.summary.deleted++;
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
