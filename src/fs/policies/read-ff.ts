/** ff — the first replica in configuration order, the rest for fail-over. */
import type { ReadPolicy } from './types.js';

export const readFirstFound: ReadPolicy = (replicas) => [...replicas];
