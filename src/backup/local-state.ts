/**
 * A backup host's own state, kept in `<folder>/.geogridfs/` (same file
 * system as the backups, so temp files rename into place atomically):
 *
 * - `cursor.json`: the feed position up to which all work is done, and the
 *   generation of the API's backup set it was done for (when the set changes,
 *   the files assigned to this host change: the feed is read again from 0);
 * - `index-v2.jsonl`: what the agent itself put in the folder, keyed by grid
 *   file id (stable across renames, also folder renames): the path where the
 *   copy sits, version, checksum, and the size/mtime it left there; an
 *   append-only journal compacted now and then. A local file whose size or
 *   mtime differ from its entry was changed by someone else and is never
 *   overwritten silently. The index is loaded only when there is work to do.
 *   (`index.jsonl`, the old index keyed by path, is migrated once and kept as
 *   `index.jsonl.v1-migrated`; see migrateIndex);
 * - `displaced/<id>`: a copy of ours moved out of the way of another file
 *   (a swap, a rename chain): its file's own later feed item places it;
 * - `lock`: the pid of the run in progress (overlapping runs exit at once);
 * - `partial/`: downloads in progress (resumed with Range);
 * - `trash/YYYY-MM-DD/`, `aside/<timestamp>/`: deleted and kept-aside files.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, lstat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { GeoError } from '../util/errors.js';
import { tryPidLock } from '../util/pidlock.js';

export const STATE_DIR = '.geogridfs';

/** What the agent holds of one grid file. */
export interface IndexEntry {
  /** grid file id */
  id: number;
  /** virtual path of the copy in the backup folder (for a displaced copy: where it was) */
  p: string;
  /** 1: the copy is in `.geogridfs/displaced/<id>`, out of the way of another file */
  h?: 1;
  /** 1: deleted (or no longer wanted) on the grid and kept in place by the "keep" policy */
  k?: 1;
  version: number;
  /** sha256, or null for a symlink */
  c: string | null;
  /** symlink target */
  t?: string;
  /** size we left */
  s: number;
  /** mtime we left, ns since the epoch (decimal string, from a bigint stat) */
  m: string;
}

export function statePaths(folder: string) {
  const dir = path.join(folder, STATE_DIR);
  return {
    dir,
    cursor: path.join(dir, 'cursor.json'),
    index: path.join(dir, 'index-v2.jsonl'),
    /** the index of agents before 0.2, keyed by path (migrated by migrateIndex) */
    indexV1: path.join(dir, 'index.jsonl'),
    displaced: path.join(dir, 'displaced'),
    lock: path.join(dir, 'lock'),
    partial: path.join(dir, 'partial'),
    trash: path.join(dir, 'trash'),
    aside: path.join(dir, 'aside'),
  };
}

/** Write a small file atomically (temp + fsync + rename). */
export async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

export interface CursorState {
  /** feed position up to which all work is done */
  seq: number;
  /** the API's backup-set generation the work up to `seq` was done for (null: not known yet) */
  generation: string | null;
}

export async function readCursorState(folder: string): Promise<CursorState> {
  try {
    const j = JSON.parse(await readFile(statePaths(folder).cursor, 'utf8')) as { seq?: unknown; generation?: unknown };
    const seq = typeof j.seq === 'number' && Number.isSafeInteger(j.seq) && j.seq >= 0 ? j.seq : 0;
    return { seq, generation: typeof j.generation === 'string' ? j.generation : null };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { seq: 0, generation: null };
    throw new GeoError('IO', `cannot read ${statePaths(folder).cursor}: ${(err as Error).message}`);
  }
}

export async function readCursor(folder: string): Promise<number> {
  return (await readCursorState(folder)).seq;
}

export async function writeCursor(folder: string, seq: number, generation: string | null = null): Promise<void> {
  await writeAtomic(statePaths(folder).cursor, JSON.stringify({ seq, generation, savedAt: new Date().toISOString() }) + '\n');
}

/**
 * Take the run lock, or throw GeoError LOCKED when a live process holds it.
 * A lock left by a dead process (kill -9, crash) is taken over.
 */
export async function takeLock(folder: string): Promise<() => Promise<void>> {
  const { dir, lock } = statePaths(folder);
  await mkdir(dir, { recursive: true });
  const got = await tryPidLock(lock);
  if (got.release) return got.release;
  throw new GeoError('LOCKED', got.holder ? `another backup run (pid ${got.holder}) is in progress in ${folder}` : `cannot take the lock ${lock}`);
}


/** The agent's record of what it holds, by grid file id (and which id sits at which path). */
export class LocalIndex {
  private readonly byId = new Map<number, IndexEntry>();
  /** path -> id of the copy sitting there (displaced copies sit at no path) */
  private readonly byPath = new Map<string, number>();
  private journal: FileHandle | null = null;
  private lines = 0;
  private pending: string[] = [];

  private constructor(private readonly file: string) {}

  /** Load the index (migrating an old path-keyed one first, see migrateIndex). */
  static async load(folder: string): Promise<LocalIndex> {
    const { dir, index } = statePaths(folder);
    await mkdir(dir, { recursive: true });
    await migrateIndex(folder);
    const idx = new LocalIndex(index);
    try {
      await lstat(index);
      const rl = readline.createInterface({ input: createReadStream(index), crlfDelay: Infinity });
      for await (const line of rl) {
        if (!line) continue;
        idx.lines++;
        let j: IndexEntry & { d?: 1 };
        try {
          j = JSON.parse(line) as IndexEntry & { d?: 1 };
        } catch {
          continue; // a torn last line after a crash
        }
        if (typeof j.id !== 'number') continue;
        if (j.d) idx.remove(j.id);
        else idx.put(normalizeEntry(j));
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    idx.journal = await open(index, 'a');
    return idx;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Where we hold file `id`, if we do. */
  get(id: number): IndexEntry | undefined {
    return this.byId.get(id);
  }

  /** The entry of the copy sitting at `vpath`, if it is one of ours. */
  atPath(vpath: string): IndexEntry | undefined {
    const id = this.byPath.get(vpath);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** Record (or replace) the entry of `e.id`; an entry of another id at the same path is dropped. */
  set(e: IndexEntry): void {
    const entry = normalizeEntry(e);
    if (!entry.h) {
      const other = this.byPath.get(entry.p);
      if (other !== undefined && other !== entry.id) this.delete(other);
    }
    this.put(entry);
    this.pending.push(JSON.stringify(entry));
  }

  delete(id: number): void {
    if (!this.remove(id)) return;
    this.pending.push(JSON.stringify({ id, d: 1 }));
  }

  private put(e: IndexEntry): void {
    this.remove(e.id);
    this.byId.set(e.id, e);
    if (!e.h) this.byPath.set(e.p, e.id);
  }

  private remove(id: number): boolean {
    const old = this.byId.get(id);
    if (!old) return false;
    this.byId.delete(id);
    if (!old.h && this.byPath.get(old.p) === id) this.byPath.delete(old.p);
    return true;
  }

  /**
   * Append pending changes to the journal now, without fsync: they survive
   * a kill of this process (the page cache keeps them), and flush() makes
   * them durable with the renames they describe. Used for an entry that
   * must be on disk before its file is renamed into place, so that a run
   * killed between the two never leaves a copy the index does not know
   * (which a later deletion on the grid would then not remove).
   */
  async writeNow(): Promise<void> {
    if (!this.pending.length || !this.journal) return;
    const text = this.pending.join('\n') + '\n';
    this.lines += this.pending.length;
    this.pending = [];
    await this.journal.write(text);
  }

  /** Append pending changes to the journal and fsync. */
  async flush(): Promise<void> {
    if (!this.journal) return;
    await this.writeNow();
    await this.journal.sync();
  }

  /** Flush, compact when the journal is much longer than the live entries, close. */
  async close(): Promise<void> {
    await this.flush();
    await this.journal?.close();
    this.journal = null;
    if (this.lines > 2 * this.byId.size + 1000) await writeEntries(this.file, this.byId.values());
  }

  entries(): IterableIterator<IndexEntry> {
    return this.byId.values();
  }
}

function normalizeEntry(j: IndexEntry): IndexEntry {
  const e: IndexEntry = { id: j.id, p: j.p, version: j.version, c: j.c, s: j.s, m: j.m };
  if (j.t !== undefined) e.t = j.t;
  if (j.h) e.h = 1;
  if (j.k) e.k = 1;
  return e;
}

async function writeEntries(file: string, entries: Iterable<IndexEntry>): Promise<void> {
  const out: string[] = [];
  for (const e of entries) out.push(JSON.stringify(e));
  await writeAtomic(file, out.length ? out.join('\n') + '\n' : '');
}

export interface MigrationResult {
  /** entries carried over */
  entries: number;
  /** paths that named a file id already held at another path: left in place, no longer tracked */
  untracked: string[];
}

/**
 * Convert the old index (`index.jsonl`, keyed by path) into the one keyed by
 * file id, once. Nothing in the folder is moved or deleted: every entry is
 * carried over; when one file id was recorded at several paths (left behind
 * by the old path-keyed agent) the entry of its newest version is kept and the
 * other copies stay where they are, untracked. The cursor is set back to 0
 * first (keeping the backup-set generation): the next run reads the whole feed
 * once and, now by id, recognises what it holds without downloading and
 * applies the deletions and renames the old index missed (e.g. a file
 * replaced after its folder was renamed). Crash-safe: every step can be
 * repeated; the old file is renamed away last. Returns null when there was
 * nothing to migrate.
 */
export async function migrateIndex(folder: string): Promise<MigrationResult | null> {
  const sp = statePaths(folder);
  const [hasNew, hasOld] = await Promise.all([exists(sp.index), exists(sp.indexV1)]);
  if (!hasOld) return null;
  if (hasNew) {
    // a crash after the new index was written: finish the last step
    await rename(sp.indexV1, `${sp.indexV1}.v1-migrated`);
    return null;
  }
  const byPath = new Map<string, Omit<IndexEntry, 'p'>>();
  const rl = readline.createInterface({ input: createReadStream(sp.indexV1), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line) continue;
    try {
      const j = JSON.parse(line) as { p: string; d?: 1 } & Omit<IndexEntry, 'p'>;
      if (typeof j.p !== 'string') continue;
      if (j.d) byPath.delete(j.p);
      else if (typeof j.id === 'number') byPath.set(j.p, j);
    } catch {
      /* a torn last line after a crash */
    }
  }
  const byId = new Map<number, IndexEntry>();
  const untracked: string[] = [];
  for (const [p, j] of byPath) {
    const e = normalizeEntry({ ...j, p });
    const prev = byId.get(e.id);
    if (prev && prev.version >= e.version) {
      untracked.push(p);
      continue;
    }
    if (prev) untracked.push(prev.p);
    byId.set(e.id, e);
  }
  const cursor = await readCursorState(folder);
  if (cursor.seq !== 0) await writeCursor(folder, 0, cursor.generation);
  await writeEntries(sp.index, byId.values());
  await rename(sp.indexV1, `${sp.indexV1}.v1-migrated`);
  return { entries: byId.size, untracked };
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
