/** epff — existing path, first found: nodes that already hold the parent folder first (keeps folders together), then the rest. */
import type { PlacementPolicy } from './types.js';

export const epff: PlacementPolicy = (candidates) => [...candidates.filter((c) => c.parentExists), ...candidates.filter((c) => !c.parentExists)];
