/**
 * Open file handles of one mount. A reader holds the ordered replicas it may
 * fail over to; a writer holds one node's file, the streaming checksum and
 * the attributes it will register on flush/release.
 */
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { StorageNode } from '../storage/node-io.js';
import type { ReadCandidate } from './policies/index.js';

export interface ReadHandle {
  kind: 'read';
  path: string;
  candidates: ReadCandidate[];
  /** index in `candidates` of the replica being read */
  index: number;
  fh: FileHandle | null;
  /** the size metadata gives the version being read: a replica with other bytes is not it */
  size?: number;
  /** opened while this mount had the file open for writing: reads see the writer's bytes */
  writer?: WriteHandle;
}

export interface WriteHandle {
  kind: 'write';
  path: string;
  node: StorageNode;
  /** where the published bytes sit on the node (differs from `path` only for a pending rename) */
  nodePath: string;
  /**
   * The temp file (node-relative, under /.ggfs-tmp) holding the bytes being
   * written, renamed over `path` at commit. null: `fh` is the published file
   * itself, opened read-only; the first write copies it to a temp.
   */
  tmp: string | null;
  fh: FileHandle;
  /** file descriptors sharing this writer (several open(2)s of one file in this mount) */
  refs: number;
  /** the last descriptor was released: `fh` is closed */
  closed: boolean;
  /** a copy-on-write in progress (single flight) */
  cow: Promise<void> | null;
  /** sha256 of bytes [0, seqOffset) while writes were sequential from 0; null = recompute on commit */
  hash: Hash | null;
  seqOffset: number;
  size: number;
  /** changed since the last commit */
  dirty: boolean;
  /** bytes written since the last commit (flush registers only then) */
  wrote: boolean;
  /** unlinked while open: never register it */
  unlinked: boolean;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  atimeMs: number;
  /** the file's id once metadata knows it (stable inode number) */
  fileId?: number;
  /** writes handed to the node and not finished yet, in order (write-behind; see GridFs.write) */
  tail: Promise<void>;
  /** bytes of those writes */
  pendingBytes: number;
  /** the first failure of a write in flight: every later call on the writer reports it */
  writeError: NodeJS.ErrnoException | null;
  /** writes not done because the node was full (from the first such failure on): re-applied on the next node */
  redo: { data: Buffer; position: number }[];
  /**
   * Commits and truncates of this writer, one at a time (GridFs.exclusive);
   * `exclusiveHeld` counts those running or waiting. Writes wait for them:
   * a write landing in the temp while a commit publishes it would change
   * the published bytes after their size and checksum were registered.
   */
  exclusiveTail: Promise<void>;
  exclusiveHeld: number;
}

export type Handle = ReadHandle | WriteHandle;

export class HandleTable {
  private readonly handles = new Map<number, Handle>();
  private next = 1;

  add(h: Handle): number {
    while (this.handles.has(this.next) || this.next === 0) this.next = (this.next + 1) >>> 0;
    const fd = this.next;
    this.next = (this.next + 1) >>> 0;
    this.handles.set(fd, h);
    return fd;
  }

  get(fd: number): Handle | undefined {
    return this.handles.get(fd);
  }

  remove(fd: number): void {
    this.handles.delete(fd);
  }

  get size(): number {
    return this.handles.size;
  }

  /** Every handle once (a shared writer appears once). */
  all(): Handle[] {
    return [...new Set(this.handles.values())];
  }

  /** Writers open on exactly this path, newest last (each once, however many descriptors share it). */
  writers(vpath: string): WriteHandle[] {
    const out = new Set<WriteHandle>();
    for (const h of this.handles.values()) if (h.kind === 'write' && h.path === vpath) out.add(h);
    return [...out];
  }

  /** The writer a new open(2) of `vpath` shares, if this mount has it open for writing. */
  liveWriter(vpath: string): WriteHandle | undefined {
    return this.writers(vpath).find((w) => !w.unlinked && !w.closed);
  }

  /** Follow a rename: handles on `from` or below it move to `to`. */
  rename(from: string, to: string): void {
    for (const h of new Set(this.handles.values())) {
      if (h.path === from) h.path = to;
      else if (h.path.startsWith(from + '/')) h.path = to + h.path.slice(from.length);
      if (h.kind === 'write') {
        if (h.nodePath === from) h.nodePath = to;
        else if (h.nodePath.startsWith(from + '/')) h.nodePath = to + h.nodePath.slice(from.length);
      }
    }
  }

  /** The file was unlinked: writers keep their bytes but never register them. */
  unlinked(vpath: string): void {
    for (const h of this.handles.values()) if (h.kind === 'write' && h.path === vpath) h.unlinked = true;
  }
}
