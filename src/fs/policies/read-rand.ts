/** rand — a random replica per open, the rest for fail-over. */
import { shuffled, type ReadPolicy } from './types.js';

export const readRandom: ReadPolicy = (replicas) => shuffled(replicas);
