/**
 * The catalog of coded errors that the CLI, the API and the daemons raise.
 * A GeoError's message is meant for the user: it names the thing that is wrong
 * (the config key, the node, the path) and never contains a secret.
 */
export const ERROR_CODES = {
  CONFIG_NOT_FOUND: 'the config file given does not exist',
  CONFIG_INVALID: 'the configuration does not validate',
  DB_UNREACHABLE: 'the PostgreSQL server cannot be reached',
  DB_BUSY: 'every database connection of the process stayed busy',
  DB_SCHEMA_NEWER: 'the database schema is newer than this code',
  DB_SCHEMA_OLD: 'the database schema needs `geogridfs db migrate`',
  EMBEDDED_PG: 'the embedded PostgreSQL server failed',
  NOT_FOUND: 'the named object does not exist',
  CONFLICT: 'the change conflicts with the current state',
  UNSAFE: 'the change would lose data',
  USAGE: 'the command line is wrong',
  LOCKED: 'another run holds the lock',
  IO: 'a storage operation failed',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GeoError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GeoError';
    this.code = code;
  }
  /** Process exit code: 2 for usage errors, 1 for everything else. */
  get exitCode(): number {
    return this.code === 'USAGE' ? 2 : 1;
  }
}

export function isGeoError(err: unknown, code?: ErrorCode): err is GeoError {
  return err instanceof GeoError && (code === undefined || err.code === code);
}
