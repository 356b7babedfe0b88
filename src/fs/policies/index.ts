/** The policy tables: configuration names -> functions. */
import type { PLACEMENT_POLICIES, READ_POLICIES } from '../../config/schema.js';
import type { PlacementPolicy, ReadPolicy } from './types.js';
import { mfs } from './mfs.js';
import { lfs } from './lfs.js';
import { ff } from './ff.js';
import { rand } from './rand.js';
import { epff } from './epff.js';
import { spread } from './read-spread.js';
import { readFirstFound } from './read-ff.js';
import { readRandom } from './read-rand.js';

export const PLACEMENT: Record<(typeof PLACEMENT_POLICIES)[number], PlacementPolicy> = { mfs, lfs, ff, rand, epff };
export const READ: Record<(typeof READ_POLICIES)[number], ReadPolicy> = { spread, ff: readFirstFound, rand: readRandom };
export type { PlacementPolicy, ReadPolicy, PlacementCandidate, ReadCandidate } from './types.js';
