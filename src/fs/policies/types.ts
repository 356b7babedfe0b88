/**
 * Placement and read-selection policies: small named functions, found by
 * name (as in mergerfs). They are pure: the caller gathers the facts.
 */
import type { StorageNode } from '../../storage/node-io.js';

export interface PlacementCandidate {
  node: StorageNode;
  /** bytes available to unprivileged writers on the node */
  freeBytes: number;
  /** the new entry's parent folder already exists on the node */
  parentExists: boolean;
}

/**
 * Order the candidates (active, healthy nodes) for a new entry at `vpath`:
 * the first is tried first; the rest are fall-backs (ENOSPC moves the create
 * to the next).
 */
export type PlacementPolicy = (candidates: readonly PlacementCandidate[], vpath: string) => PlacementCandidate[];

export interface ReadCandidate {
  node: StorageNode;
  /** where the bytes sit on that node */
  path: string;
}

/** Order the healthy current replicas of a file for reading: first tried first, the rest for fail-over. */
export type ReadPolicy = (replicas: readonly ReadCandidate[], vpath: string) => ReadCandidate[];

/** A stable 32-bit hash of a string (FNV-1a), for spreading by path. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Fisher-Yates shuffle of a copy. */
export function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
