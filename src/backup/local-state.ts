/**
 * A backup host's own state, kept in `<folder>/.geogridfs/` (same file
 * system as the backups, so temp files rename into place atomically):
 *
 * - `cursor.json`: the feed position up to which all work is done, and the
 *   generation of the API's backup set it was done for (when the set changes,
 *   the files assigned to this host change: the feed is read again from 0);
 * - `index.jsonl`: what the agent itself put in the folder (path -> file id,
 *   version, checksum, and the size/mtime it left there), an append-only
 *   journal compacted now and then. A local file whose size or mtime differ
 *   from its entry was changed by someone else and is never overwritten
 *   silently. The index is loaded only when there is work to do;
 * - `lock`: the pid of the run in progress (overlapping runs exit at once);
 * - `partial/`: downloads in progress (resumed with Range);
 * - `trash/YYYY-MM-DD/`, `aside/<timestamp>/`: deleted and kept-aside files.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, lstat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { GeoError } from '../util/errors.js';
import { pidAlive } from '../util/host.js';

export const STATE_DIR = '.geogridfs';

export interface IndexEntry {
  /** grid file id */
  id: number;
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
    index: path.join(dir, 'index.jsonl'),
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
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await rm(lock, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new GeoError('LOCKED', `another backup run (pid ${pid}) is in progress in ${folder}`);
      }
      // stale: move it away atomically so that two takers cannot both win
      await rename(lock, `${lock}.stale-${process.pid}`).catch(() => undefined);
      await rm(`${lock}.stale-${process.pid}`, { force: true });
    }
  }
  throw new GeoError('LOCKED', `cannot take the lock ${lock}`);
}

/** The agent's record of what it put where. */
export class LocalIndex {
  private readonly map = new Map<string, IndexEntry>();
  private journal: FileHandle | null = null;
  private lines = 0;
  private pending: string[] = [];

  private constructor(private readonly file: string) {}

  static async load(folder: string): Promise<LocalIndex> {
    const { dir, index } = statePaths(folder);
    await mkdir(dir, { recursive: true });
    const idx = new LocalIndex(index);
    try {
      await lstat(index);
      const rl = readline.createInterface({ input: createReadStream(index), crlfDelay: Infinity });
      for await (const line of rl) {
        if (!line) continue;
        idx.lines++;
        try {
          const j = JSON.parse(line) as { p: string; d?: 1 } & IndexEntry;
          if (j.d) idx.map.delete(j.p);
          else idx.map.set(j.p, { id: j.id, version: j.version, c: j.c, s: j.s, m: j.m, ...(j.t !== undefined ? { t: j.t } : {}) });
        } catch {
          /* a torn last line after a crash: ignore it */
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    idx.journal = await open(index, 'a');
    return idx;
  }

  get size(): number {
    return this.map.size;
  }

  get(p: string): IndexEntry | undefined {
    return this.map.get(p);
  }

  set(p: string, e: IndexEntry): void {
    this.map.set(p, e);
    this.pending.push(JSON.stringify({ p, ...e }));
  }

  delete(p: string): void {
    if (!this.map.delete(p)) return;
    this.pending.push(JSON.stringify({ p, d: 1 }));
  }

  /** Append pending changes to the journal and fsync. */
  async flush(): Promise<void> {
    if (!this.pending.length || !this.journal) return;
    const text = this.pending.join('\n') + '\n';
    this.lines += this.pending.length;
    this.pending = [];
    await this.journal.write(text);
    await this.journal.sync();
  }

  /** Flush, compact when the journal is much longer than the live entries, close. */
  async close(): Promise<void> {
    await this.flush();
    await this.journal?.close();
    this.journal = null;
    if (this.lines > 2 * this.map.size + 1000) {
      const out: string[] = [];
      for (const [p, e] of this.map) out.push(JSON.stringify({ p, ...e }));
      await writeAtomic(this.file, out.length ? out.join('\n') + '\n' : '');
    }
  }

  entries(): IterableIterator<[string, IndexEntry]> {
    return this.map.entries();
  }
}

