/** lfs — least free space first (fill one node, then the next). */
import type { PlacementPolicy } from './types.js';

export const lfs: PlacementPolicy = (candidates) => [...candidates].sort((a, b) => a.freeBytes - b.freeBytes || a.node.name.localeCompare(b.node.name));
