/**
 * Parsing helpers shared by the route files: every one throws a coded
 * ApiError (4xx) on bad input.
 */
import { normalizeVirtualPath, BadPathError } from '../../util/vpath.js';
import { ApiError } from '../errors.js';

/** A virtual path from the client, normalised; `..`, relative, NUL → GGFS_BAD_PATH. */
export function parsePath(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0) throw new ApiError('GGFS_BAD_PATH', 'path is required');
  try {
    return normalizeVirtualPath(raw);
  } catch (err) {
    if (err instanceof BadPathError) throw new ApiError('GGFS_BAD_PATH', err.message);
    throw err;
  }
}

/** A feed cursor: a decimal seq 0 ≤ n < 2^53. */
export function parseCursor(raw: unknown): number {
  if (raw === undefined) return 0;
  if (typeof raw !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(raw)) throw new ApiError('GGFS_BAD_CURSOR', 'the cursor must be a whole number ≥ 0 as returned in "next"');
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new ApiError('GGFS_BAD_CURSOR', 'the cursor is too large');
  return n;
}

/** JSON schema for a bounded page size passed as a query string. */
export const limitSchema = { type: 'integer', minimum: 1, maximum: 5000 } as const;
