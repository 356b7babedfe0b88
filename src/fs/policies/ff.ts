/** ff — first found: the nodes in configuration order. */
import type { PlacementPolicy } from './types.js';

export const ff: PlacementPolicy = (candidates) => [...candidates];
