/**
 * The filesystem's error type and its one mapper to errno.
 *
 * Handlers throw `FsError` (an errno name) or let lower layers' errors pass;
 * `toErrno` turns anything into a positive errno number: Node `err.code`
 * names, PostgreSQL SQLSTATEs, path errors and time-outs are mapped; anything
 * unknown is logged with its stack and becomes EIO.
 */
import os from 'node:os';
import type { Logger } from '../util/log.js';

export const ERRNO = os.constants.errno;
export type ErrnoName = keyof typeof os.constants.errno;

export class FsError extends Error {
  readonly code: ErrnoName;
  constructor(code: ErrnoName, message?: string) {
    super(message ?? code);
    this.name = 'FsError';
    this.code = code;
  }
  get errno(): number {
    return ERRNO[this.code];
  }
}

/** SQLSTATE -> errno for the statements the filesystem runs. */
const SQLSTATE: Record<string, ErrnoName> = {
  '23505': 'EEXIST', // unique violation: the path is taken
  '23503': 'ENOTEMPTY', // foreign key: a folder still has children
  '23514': 'EINVAL', // check violation: bad path / value
  '57014': 'ETIMEDOUT', // statement timeout
  '53100': 'ENOSPC', // disk full on the database server
  '40001': 'EAGAIN',
  '40P01': 'EAGAIN',
};

/** True for errors that mean "the node (or database) did not answer in time". */
export function isTimeout(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ETIMEDOUT' || code === 'EHOSTDOWN';
}

/**
 * Map any error to a positive errno. Known codes pass; GeoError NOT_FOUND ->
 * ENOENT, CONFLICT -> EEXIST, DB_BUSY -> EAGAIN; unknown errors are logged with their stack and
 * become EIO.
 */
export function toErrno(err: unknown, log?: Logger, context?: Record<string, unknown>): number {
  if (err instanceof FsError) return err.errno;
  const e = err as { code?: unknown; errno?: unknown; name?: string } | null;
  const code = e?.code;
  if (typeof code === 'string') {
    if (code in ERRNO) return ERRNO[code as ErrnoName];
    if (code in SQLSTATE) return ERRNO[SQLSTATE[code]!];
    if (code === 'NOT_FOUND') return ERRNO.ENOENT;
    if (code === 'CONFLICT') return ERRNO.EEXIST;
    if (code === 'ABORT_ERR') return ERRNO.EINTR;
    if (code === 'DB_BUSY') {
      log?.warn({ ...context, err: (err as Error).message }, 'database connections busy: answering EAGAIN');
      return ERRNO.EAGAIN;
    }
    if (code === 'EHOSTDOWN') return ERRNO.EIO; // a suspect node (not every platform's table has EHOSTDOWN)
  }
  if (e?.name === 'BadPathError') {
    const errno = (e as { errno?: string }).errno;
    return errno === 'ENAMETOOLONG' ? ERRNO.ENAMETOOLONG : ERRNO.EINVAL;
  }
  log?.error({ ...context, err }, 'unexpected error: answering EIO');
  return ERRNO.EIO;
}
