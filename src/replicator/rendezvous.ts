/**
 * Rendezvous (highest-random-weight) hashing: every node computes the same
 * ranking of nodes for a file without talking to the others, and removing a
 * node from the candidate set never reorders the rest. Pure functions.
 */
import { createHash } from 'node:crypto';

/** The weight of `node` for `key`: the first 52 bits of sha256(key \0 node), a float in [0, 1). */
export function weight(key: string | number, node: string): number {
  const h = createHash('sha256').update(`${key}\0${node}`).digest();
  // 52 bits fit a double exactly
  return (h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12)) / 2 ** 52;
}

/** `nodes` ordered by descending weight for `key` (ties broken by name). */
export function rank<T extends { name: string }>(key: string | number, nodes: readonly T[]): T[] {
  return nodes
    .map((n) => ({ n, w: weight(key, n.name) }))
    .sort((a, b) => b.w - a.w || (a.n.name < b.n.name ? -1 : a.n.name > b.n.name ? 1 : 0))
    .map((x) => x.n);
}

/** The `count` highest-weight nodes for `key`. */
export function pick<T extends { name: string }>(key: string | number, nodes: readonly T[], count: number): T[] {
  return count <= 0 ? [] : rank(key, nodes).slice(0, count);
}
