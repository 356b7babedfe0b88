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

export class MetaCache {
  private readonly map = new Map<string, Slot>();
  private hits = 0;
  private misses = 0;

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

  /** The cached answer without touching recency or counters (expired entries included). */
  peek(vpath: string): Known | undefined {
    return this.map.get(vpath)?.value;
  }

  /** Every cached answer (for subtree invalidation of dependent caches). */
  *entries(): IterableIterator<[string, Known]> {
    for (const [k, slot] of this.map) yield [k, slot.value];
  }

  set(vpath: string, value: Known): void {
    const ttl = value === null ? this.negativeMs : this.positiveMs;
    if (ttl <= 0) return;
    this.map.delete(vpath);
    this.map.set(vpath, { value, expires: Date.now() + ttl });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  invalidate(vpath: string): void {
    this.map.delete(vpath);
  }

  /** Drop a folder and everything under it. */
  invalidateSubtree(folder: string): void {
    this.map.delete(folder);
    const prefix = folder === '/' ? '/' : folder + '/';
    for (const key of this.map.keys()) if (key.startsWith(prefix)) this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, size: this.map.size };
  }
}
