/**
 * Downloading one file into the backup folder, never leaving a partial file
 * in place: bytes go to `.geogridfs/partial/<id>-<sha256>.part`, resumed with
 * `Range` + `If-Range: "<sha256>"` when a previous attempt left some; the
 * whole file is verified (size and sha256), fsynced, given its mode and
 * mtime, and renamed into place (then the folder is fsynced).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { ApiClient, HttpError, ThrottledError } from './api-client.js';
import { statePaths } from './local-state.js';
import { FsyncPool } from './fsync-pool.js';

export interface RemoteFile {
  id: number;
  path: string;
  size: number;
  checksum: string;
  mode: number;
  mtimeUs: number;
}

/** The free-space floor would be crossed: stop taking downloads in this run. */
export class FreeSpaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FreeSpaceError';
  }
}

/** The file changed or went away on the grid since the feed said so: a later feed entry carries the new state. */
export class SupersededError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SupersededError';
  }
}

export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

export interface DownloadResult {
  /** body bytes received in this call (all attempts) */
  transferred: number;
  /** bytes that were already in the partial file when we started */
  resumedFrom: number;
  /** size and mtime (ns, decimal) of the file now in place, as the local index records them */
  stamp: { s: number; m: string };
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    /* some file systems refuse fsync on a directory */
  } finally {
    await fh.close();
  }
}

async function hashFile(file: string, h = createHash('sha256')): Promise<ReturnType<typeof createHash>> {
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h;
}

export async function sha256File(file: string): Promise<string> {
  return (await hashFile(file)).digest('hex');
}

/**
 * A Writable onto an open file that leaves it open (for the fsync after):
 * buffers up to 1 MiB while a write is in flight, then writes the queued
 * chunks with one writev.
 */
function writerTo(fh: FileHandle): Writable {
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      fh.write(chunk).then(() => cb(), cb);
    },
    writev(chunks, cb) {
      fh.writev(chunks.map((c) => c.chunk as Buffer)).then(() => cb(), cb);
    },
  });
}

export interface DownloaderOptions {
  client: ApiClient;
  folder: string;
  minFreeBytes: number;
  /** HTTP downloads at once (lowered further when the server answers 429 with its limit) */
  concurrency: number;
  /** called with body bytes as they arrive (progress) */
  onBytes?: (n: number) => void;
}

/** A place in line for a download slot (Downloader.takeTurn). */
export interface Turn {
  ready: Promise<void>;
  pass: () => void;
}

/** A partial file written and verified, ready to be renamed into place. */
interface Verified {
  /** size and mtime (ns, decimal) as the index records them */
  stamp: { s: number; m: string };
}

/** How long a free-space sample is trusted (bytes written since are subtracted from it). */
const STATFS_TTL_MS = 1000;

export class Downloader {
  constructor(private readonly opts: DownloaderOptions) {
    this.limit = Math.max(1, opts.concurrency);
  }

  partialPath(f: RemoteFile): string {
    return path.join(statePaths(this.opts.folder).partial, `${f.id}-${f.checksum}.part`);
  }

  private partialDirReady = false;
  /** fsyncs run on worker threads: they do not hold the libuv pool the other file operations need */
  private readonly fsyncs = new FsyncPool(8);

  /** Stop the fsync workers (after the last download). */
  async close(): Promise<void> {
    await this.fsyncs.close();
  }

  /**
   * HTTP downloads allowed at once. Only the transfer holds a slot: the
   * verification, fsync and rename of a finished file overlap the next
   * transfers (fsyncs of several files then share one journal commit).
   */
  private limit: number;
  private active = 0;
  private waiters: (() => void)[] = [];

  private async acquire(): Promise<void> {
    while (this.active >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.active++;
  }

  private release(): void {
    this.active--;
    this.waiters.shift()?.();
  }

  /** the last place in line for a download slot (see takeTurn) */
  private line: Promise<void> = Promise.resolve();

  /**
   * A place in line for a download slot. The agent takes one per feed item,
   * in feed order, before the item's local checks (which take their own
   * time), and hands it to download(): files get their slots in feed order.
   * `pass` lets the next one ask (once this one holds a slot, or when the
   * item needs no download); passing twice is harmless.
   */
  takeTurn(): Turn {
    const ready = this.line;
    let pass!: () => void;
    this.line = new Promise<void>((r) => (pass = r));
    return { ready, pass };
  }

  /** folders with renames not yet fsynced (done once per folder by syncDirs, before anything is reported) */
  private dirtyDirs = new Set<string>();

  /** fsync every folder that received files since the last call (makes the renames durable). */
  async syncDirs(): Promise<void> {
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  /** bytes promised to downloads in flight (so parallel downloads cannot overshoot the floor together) */
  private reserved = 0;
  /** last free-space sample, and bytes finished since it was taken */
  private freeSample: { at: number; free: number; writtenSince: number } | null = null;

  private async checkSpace(need: number): Promise<void> {
    let sample = this.freeSample;
    if (!sample || performance.now() - sample.at > STATFS_TTL_MS) {
      const s = await statfs(this.opts.folder);
      sample = this.freeSample = { at: performance.now(), free: Number(s.bavail) * Number(s.bsize), writtenSince: 0 };
    }
    const free = sample.free - sample.writtenSince;
    if (free - this.reserved - need < this.opts.minFreeBytes) {
      this.freeSample = null; // ask the file system again next time
      throw new FreeSpaceError(`free space ${free} bytes minus ${this.reserved + need} to download would cross the floor of ${this.opts.minFreeBytes} bytes (backup.minFreeBytes)`);
    }
  }

  /**
   * One attempt: continue the partial file from where it stops, then verify
   * size and sha256, set mode and mtime and fsync it (all on the open file).
   * Holds a download slot only while bytes come over the network.
   */
  private async attempt(f: RemoteFile, part: string, result: DownloadResult, reserve: (bytes: number) => void, turn: Turn): Promise<Verified> {
    let have = await stat(part).then((s) => s.size, () => 0);
    if (have > f.size) {
      await rm(part, { force: true });
      have = 0;
    }
    await this.checkSpace(f.size - have);
    reserve(f.size - have);
    let hash: ReturnType<typeof createHash> | null = null;
    let fh: FileHandle | null = null;
    try {
      if (!(have === f.size && f.size > 0)) {
        await turn.ready;
        await this.acquire();
        turn.pass();
        try {
          const headers: Record<string, string> = { 'if-match': `"${f.checksum}"` };
          if (have > 0 && have < f.size) {
            headers.range = `bytes=${have}-`;
            headers['if-range'] = `"${f.checksum}"`;
          }
          const res = await this.opts.client.send('GET', `/api/v1/content?path=${encodeURIComponent(f.path)}`, headers);
          if (res.status === 404 || res.status === 412) {
            res.body.resume();
            throw new SupersededError(`${f.path} changed or went away on the grid since the feed listed it`);
          }
          if (res.status !== 200 && res.status !== 206) throw await this.opts.client.errorFrom(res);
          if (res.status === 200) have = 0; // the server sent everything (If-Range did not match or no range asked)
          else if (!String(res.headers['content-range'] ?? '').startsWith(`bytes ${have}-`)) {
            res.body.resume();
            throw new HttpError(502, 'BAD_RANGE_REPLY', `unexpected Content-Range ${res.headers['content-range']}`);
          }
          if (res.status === 206 && result.resumedFrom === 0) result.resumedFrom = have;
          // hash while the bytes stream in (the kept prefix of a resumed file is read once first)
          const h = (hash = have > 0 ? await hashFile(part) : createHash('sha256'));
          fh = await open(part, have === 0 ? 'w' : 'a');
          const onBytes = this.opts.onBytes;
          // a write stream keeps the socket flowing while earlier chunks are written
          await pipeline(
            res.body,
            new Transform({
              transform(chunk: Buffer, _enc, cb) {
                h.update(chunk);
                result.transferred += chunk.length;
                onBytes?.(chunk.length);
                cb(null, chunk);
              },
            }),
            writerTo(fh),
          );
        } catch (err) {
          // the server allows fewer downloads at once than we run: stay under its limit from now
          // on (lowered before this slot is freed, so that no waiting download starts meanwhile)
          if (err instanceof ThrottledError && err.maxConcurrent !== null) this.limit = Math.min(this.limit, err.maxConcurrent);
          throw err;
        } finally {
          this.release();
        }
      } else {
        fh = await open(part, 'r+');
      }
      // one fstat serves the size check and the index stamp (taken after futimes; the
      // size is checked before anything is renamed, so the order is safe)
      const sum = hash ? hash.digest('hex') : await sha256File(part);
      await fh.chmod(f.mode & 0o7777);
      const mtime = f.mtimeUs / 1e6;
      await fh.utimes(mtime, mtime);
      const st = await fh.stat({ bigint: true });
      const size = Number(st.size);
      if (size !== f.size) {
        if (size > f.size) await rm(part, { force: true });
        throw Object.assign(new Error(`${f.path}: got ${size} of ${f.size} bytes`), { code: 'ECONNRESET' }); // transient: resume
      }
      if (sum !== f.checksum) {
        await rm(part, { force: true });
        throw new IntegrityError(`${f.path}: downloaded content has sha256 ${sum}, expected ${f.checksum}`);
      }
      await this.fsyncs.fsync(fh.fd);
      if (this.freeSample) this.freeSample.writtenSince += f.size;
      return { stamp: { s: Number(st.size), m: String(st.mtimeNs) } };
    } finally {
      await (fh as FileHandle | null)?.close().catch(() => undefined);
    }
  }

  /**
   * Download `f` to the local path `dest` (replacing what is there). The
   * rename is made durable by the next syncDirs(). `beforePlace` runs with
   * the verified file's size/mtime stamp right before the rename (the
   * agent records the copy in its index first).
   * Retries transient failures (resuming), honours 429 (client), throws
   * FreeSpaceError, SupersededError, IntegrityError (after one fresh retry).
   */
  async download(f: RemoteFile, dest: string, turn: Turn = this.takeTurn(), beforePlace?: (stamp: { s: number; m: string }) => Promise<void>): Promise<DownloadResult> {
    const part = this.partialPath(f);
    const result: DownloadResult = { transferred: 0, resumedFrom: 0, stamp: { s: 0, m: '0' } };
    let integrityFailures = 0;
    let verified: Verified;
    try {
      if (!this.partialDirReady) {
        await mkdir(path.dirname(part), { recursive: true });
        this.partialDirReady = true;
      }
      verified = await this.opts.client.withRetries(`download ${f.path}`, async () => {
        let reserved = 0;
        try {
          return await this.attempt(f, part, result, (n) => {
            reserved = n;
            this.reserved += n;
          }, turn);
        } catch (err) {
          if (err instanceof IntegrityError && ++integrityFailures < 2) throw Object.assign(err, { code: 'ECONNRESET' });
          throw err;
        } finally {
          this.reserved -= reserved;
        }
      });
    } finally {
      turn.pass();
    }
    result.stamp = verified.stamp;
    await beforePlace?.(verified.stamp);
    await rename(part, dest).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdir(path.dirname(dest), { recursive: true }); // the folder went away meanwhile
      await rename(part, dest);
    });
    this.dirtyDirs.add(path.dirname(dest));
    return result;
  }
}
