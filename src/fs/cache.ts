/**
 * The bounded metadata cache of one mount: path -> what metadata says
 * (a folder, a file, or "not in metadata"), with an expiry. Least recently
 * used entries are dropped beyond `maxEntries`. Other mounts' changes arrive
 * through NOTIFY and invalidate paths or whole subtrees; a lost LISTEN
 * connection clears everything.
 */
import type { FileRow, FolderRow } from '../meta/files.js';

export type Known = { type: 'folder'; folder: FolderRow } | { type: 'file'; file: FileRow } | null;

interface Slot {
  value: Known;
  expires: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
}

/** Something that mirrors cached entries (the binding's attribute cache) and must drop what the cache drops or replaces. */
export interface CacheMirror {
  invalidate(vpath: string): void;
  invalidateSubtree(folder: string): void;
  clear(): void;
}

export class MetaCache {
  private readonly map = new Map<string, Slot>();
  /** told of every replacement and invalidation (see CacheMirror) */
  mirror: CacheMirror | null = null;
  private hits = 0;
  private misses = 0;
  /**
   * Bumped by every invalidation. A lookup notes it before asking
   * PostgreSQL and stores its answer only if no invalidation came in
   * meanwhile: an answer read before another mount's commit must not be
   * cached after that commit's NOTIFY went by.
   */
  private gen = 0;

  /** The current generation, to pass to `set` after a lookup. */
  get generation(): number {
    return this.gen;
  }

  constructor(
    private readonly maxEntries: number,
    private readonly positiveMs: number,
    private readonly negativeMs: number,
  ) {}

  /** The cached answer (undefined = not cached or expired). */
  get(vpath: string): Known | undefined {
    const slot = this.map.get(vpath);
    if (!slot) {
      this.misses++;
      return undefined;
    }
    if (slot.expires < Date.now()) {
      this.map.delete(vpath);
      this.misses++;
      return undefined;
    }
    // refresh recency
    this.map.delete(vpath);
    this.map.set(vpath, slot);
    this.hits++;
    return slot.value;
  }

  /** The cached answer if it has not expired, without touching recency or counters. */
  live(vpath: string): Known | undefined {
    const slot = this.map.get(vpath);
    return slot && slot.expires >= Date.now() ? slot.value : undefined;
  }

  /** The cached answer without touching recency or counters (expired entries included). */
  peek(vpath: string): Known | undefined {
    return this.map.get(vpath)?.value;
  }

  /** Every cached answer (for subtree invalidation of dependent caches). */
  *entries(): IterableIterator<[string, Known]> {
    for (const [k, slot] of this.map) yield [k, slot.value];
  }

  /** Cache an answer; with `since` (the generation before the lookup), only when nothing was invalidated meanwhile. */
  set(vpath: string, value: Known, since?: number): void {
    const ttl = value === null ? this.negativeMs : this.positiveMs;
    if (ttl <= 0) return;
    if (since !== undefined && since !== this.gen) return;
    this.mirror?.invalidate(vpath);
    this.map.delete(vpath);
    this.map.set(vpath, { value, expires: Date.now() + ttl });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  invalidate(vpath: string): void {
    this.gen++;
    this.map.delete(vpath);
    this.mirror?.invalidate(vpath);
  }

  /** Drop a folder and everything under it. */
  invalidateSubtree(folder: string): void {
    this.gen++;
    // a path known as a file has nothing under it: the mirror's subtree scan (a walk over its table) is not needed
    const wasFile = this.map.get(folder)?.value?.type === 'file';
    this.map.delete(folder);
    const prefix = folder === '/' ? '/' : folder + '/';
    for (const key of this.map.keys()) if (key.startsWith(prefix)) this.map.delete(key);
    if (wasFile) this.mirror?.invalidate(folder);
    else this.mirror?.invalidateSubtree(folder);
  }

  clear(): void {
    this.gen++;
    this.map.clear();
    this.mirror?.clear();
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, size: this.map.size };
  }
}
