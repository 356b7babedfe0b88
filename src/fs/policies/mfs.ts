/** mfs — most free space first (the default). */
import type { PlacementPolicy } from './types.js';

export const mfs: PlacementPolicy = (candidates) => [...candidates].sort((a, b) => b.freeBytes - a.freeBytes || a.node.name.localeCompare(b.node.name));
