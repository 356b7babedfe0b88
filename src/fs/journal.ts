/**
 * The mount's metadata journal: when PostgreSQL is unreachable, every
 * metadata change the mount makes is appended here (one JSON line, written
 * and fdatasync'ed before the operation answers) and replayed in order when
 * the database is back. The bytes themselves are already on the nodes, so
 * nothing written is lost across an outage or a crash of the mount.
 *
 * File: <dataDir>/journal/<mount id>.jsonl. A replay applies each record in
 * its own transaction; records that no longer apply are reported as
 * `journal-conflict` problems by the caller and skipped.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';

export type JournalRecord =
  | { op: 'commit'; path: string; node: string; size: number; checksum: string; mode: number; uid: number; gid: number; mtimeUs: number; atimeUs: number }
  | { op: 'unlink'; path: string; nodes: string[]; /** per node, the node path removed (default: path) */ paths?: string[]; /** of `nodes`, those that had nothing there (see GridFs.mutate) */ absent?: string[] }
  | { op: 'rename'; from: string; to: string; nodes: string[]; /** per node, the node path moved (default: from) */ paths?: string[]; /** of `nodes`, those that had nothing there */ absent?: string[] }
  | { op: 'mkdir'; path: string; mode: number; uid: number; gid: number }
  | { op: 'rmdir'; path: string }
  | { op: 'setattr'; path: string; mode?: number; uid?: number; gid?: number; atimeUs?: number; mtimeUs?: number }
  | { op: 'symlink'; path: string; target: string; uid: number; gid: number };

export type Stamped = JournalRecord & { at: number };

export function journalFile(dataDir: string, mountpoint: string): string {
  const id = createHash('sha256').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
  return path.join(dataDir, 'journal', `${id}.jsonl`);
}

export class Journal {
  private chain: Promise<void> = Promise.resolve();
  private count = 0;

  constructor(readonly file: string) {}

  /** Records waiting (as known to this process). */
  get pending(): number {
    return this.count;
  }

  /** Count the records a previous run left. */
  async load(): Promise<number> {
    this.count = (await this.readAll()).length;
    return this.count;
  }

  /** Append one record durably (written and fdatasync'ed). */
  append(rec: JournalRecord): Promise<void> {
    const line = JSON.stringify({ ...rec, at: Date.now() }) + '\n';
    const next = this.chain.then(async () => {
      await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const fh = await fs.open(this.file, 'a', 0o600);
      try {
        await fh.write(line);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      this.count++;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  async readAll(): Promise<Stamped[]> {
    const text = await fs.readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    const out: Stamped[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as Stamped);
      } catch {
        // a torn last line from a crash mid-append: the operation never answered
      }
    }
    return out;
  }

  /**
   * Replay every record through `apply` in order. Stops (keeping the rest)
   * when `apply` throws; returns true when the journal is empty afterwards.
   * Appends made meanwhile are replayed too before it reports empty.
   */
  async replay(apply: (rec: Stamped) => Promise<void>): Promise<boolean> {
    for (;;) {
      const records = await this.readAll();
      if (records.length === 0) {
        this.count = 0;
        return true;
      }
      let done = 0;
      try {
        for (const rec of records) {
          await apply(rec);
          done++;
        }
      } finally {
        if (done > 0) await this.dropFirst(done);
      }
    }
  }

  /** Remove the first `n` records (after they were applied), keeping later appends. */
  private dropFirst(n: number): Promise<void> {
    const next = this.chain.then(async () => {
      const text = await fs.readFile(this.file, 'utf8').catch(() => '');
      // the same lines readAll() counted (a torn line from a crash is dropped with them)
      const lines = text.split('\n').filter((l) => {
        if (!l.trim()) return false;
        try {
          JSON.parse(l);
          return true;
        } catch {
          return false;
        }
      });
      const rest = lines.slice(n);
      const tmp = this.file + '.tmp';
      await fs.writeFile(tmp, rest.length ? rest.join('\n') + '\n' : '', { mode: 0o600 });
      const fh = await fs.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, this.file);
      this.count = rest.length;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}
