/** spread — reads of different files go to different replicas (hash of the path), the rest follow for fail-over. */
import { hash32, type ReadPolicy } from './types.js';

export const spread: ReadPolicy = (replicas, vpath) => {
  if (replicas.length < 2) return [...replicas];
  const sorted = [...replicas].sort((a, b) => a.node.name.localeCompare(b.node.name));
  const start = hash32(vpath) % sorted.length;
  return [...sorted.slice(start), ...sorted.slice(0, start)];
};
