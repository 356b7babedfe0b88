/**
 * The mount's intents (publish, unlink, rename). A writer's bytes live in a temp file on its
 * node (`<root>/.ggfs-tmp/…`) until the file is closed; then the version is
 * registered in metadata FIRST and the temp renamed over the file's path on
 * the node AFTER. A crash between the two would leave metadata naming bytes
 * that are still in the temp, so an intent line is appended before the
 * metadata commit and a done line after the rename. A mount that starts
 * with intents left over finishes each one: the temp is renamed into place
 * when metadata has that version (the commit happened), removed when not.
 *
 * Unlinks and renames have intents too (ChangeIntent): they change the
 * nodes before metadata, and a crash in between is finished by the next
 * start (GridFs.finishChange).
 *
 * The lines are written without fsync: they must survive a crash of the
 * mount process (kill -9), which keeps the kernel's page cache; a power
 * loss loses the un-fsynced temp bytes as well, exactly as on a local disk.
 *
 * File: next to the journal, `<dataDir>/journal/<mount id>.intents`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** A writer's temp about to be renamed over its path (see above). */
export interface PublishIntent {
  id: number;
  kind?: 'publish';
  /** node name */
  node: string;
  /** temp file, node-relative (a virtual path under /.ggfs-tmp) */
  tmp: string;
  /** the file's virtual path the temp is published as */
  path: string;
  checksum: string;
  size: number;
}

/**
 * An unlink or rename being applied to the node folders before its metadata
 * record. A crash in between would leave metadata naming copies that are
 * gone or moved (the file unreadable, its last copy taken for lost); a mount
 * that starts with one left over finishes the change when metadata still
 * shows the entry as it was (same file id and version, or same folder id).
 */
export interface ChangeIntent {
  id: number;
  kind: 'unlink' | 'rename';
  /** the unlinked path, or the rename's source */
  path: string;
  /** the rename's destination */
  to?: string;
  /** the metadata entry changed: a file's id and version, or a folder's id; null when metadata did not know it */
  fileId: number | null;
  version: number | null;
  folderId: number | null;
  /** node name -> node path of the (source) file's replica on it: the nodes that held it */
  paths: Record<string, string>;
  /** rename: node name -> node path of the replaced destination file's replica */
  dstPaths?: Record<string, string>;
}

export type Intent = PublishIntent | ChangeIntent;
/** An intent as added (its id is assigned by add) */
export type NewIntent = Omit<PublishIntent, 'id'> | Omit<ChangeIntent, 'id'>;

export function isChange(i: Intent): i is ChangeIntent {
  return i.kind === 'unlink' || i.kind === 'rename';
}

type Line = ({ op: 'add' } & Intent) | { op: 'done'; id: number };

/** Compact the file when nothing is pending and it grew past this. */
const COMPACT_BYTES = 1 << 20;

export class IntentLog {
  private fh: fs.FileHandle | null = null;
  private chain: Promise<void> = Promise.resolve();
  private next = 1;
  private bytes = 0;
  /** intents added and not done yet (this run's and a previous run's) */
  readonly pending = new Map<number, Intent>();
  /**
   * pending intents whose commit is still running: the resolver must leave
   * them alone (added before the intent line is even written, so that no
   * resolver run can see an intent its commit has not finished with)
   */
  private readonly owned = new Set<number>();

  /** True when a commit of this run still handles the intent. */
  isOwned(id: number): boolean {
    return this.owned.has(id);
  }

  /** Pending intents nobody handles: a previous run's, or ones whose publish failed. */
  get unowned(): number {
    return this.pending.size - this.owned.size;
  }

  /** The commit gives the intent up (its publish failed): the resolver finishes it. */
  release(id: number): void {
    this.owned.delete(id);
  }

  constructor(readonly file: string) {}

  /** Read what a previous run left: its pending intents are kept in `pending`. */
  async load(): Promise<Intent[]> {
    const text = await fs.readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    for (const l of text.split('\n')) {
      if (!l.trim()) continue;
      let line: Line;
      try {
        line = JSON.parse(l) as Line;
      } catch {
        continue; // a torn last line: its operation never went further
      }
      if (line.op === 'add') {
        const { op: _op, ...intent } = line;
        this.pending.set(intent.id, intent);
        this.next = Math.max(this.next, intent.id + 1);
      } else {
        this.pending.delete(line.id);
      }
    }
    await this.rewrite();
    return [...this.pending.values()];
  }

  private async open(): Promise<fs.FileHandle> {
    if (!this.fh) {
      await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      this.fh = await fs.open(this.file, 'a', 0o600);
    }
    return this.fh;
  }

  private append(line: Line): Promise<void> {
    const text = JSON.stringify(line) + '\n';
    const next = this.chain.then(async () => {
      const fh = await this.open();
      await fh.write(text);
      this.bytes += text.length;
      if (this.pending.size === 0 && this.bytes > COMPACT_BYTES) await this.rewrite();
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Record that `tmp` on `node` is about to become `path` with this
   * checksum, or that an unlink or rename is about to change the nodes; the
   * caller owns it until done() or release().
   */
  async add<I extends NewIntent>(i: I): Promise<I & { id: number }> {
    const intent = { id: this.next++, ...i };
    this.owned.add(intent.id);
    this.pending.set(intent.id, intent as Intent);
    await this.append({ op: 'add', ...intent });
    return intent;
  }

  async done(id: number): Promise<void> {
    this.owned.delete(id);
    if (!this.pending.delete(id)) return;
    await this.append({ op: 'done', id });
  }

  /** Replace the file with the pending intents only. */
  private async rewrite(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    const text = [...this.pending.values()].map((i) => JSON.stringify({ op: 'add', ...i }) + '\n').join('');
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = this.file + '.tmp';
    await fs.writeFile(tmp, text, { mode: 0o600 });
    await fs.rename(tmp, this.file);
    this.bytes = text.length;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}
