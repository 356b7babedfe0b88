/** rand — a random node for each new entry. */
import { shuffled, type PlacementPolicy } from './types.js';

export const rand: PlacementPolicy = (candidates) => shuffled(candidates);
