/**
 * Structured logging: JSON lines (pino) when stderr is not a terminal, a
 * human-readable form on a terminal. Secrets are redacted by key name.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  level?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  format?: 'auto' | 'json' | 'pretty';
  name?: string;
  destination?: NodeJS.WritableStream;
}

const REDACT = ['token', 'password', 'authorization', 'headers.authorization', '*.token', '*.password', 'url', '*.url'];

export function createLogger(opts: LogOptions = {}): Logger {
  const dest = opts.destination ?? process.stderr;
  const isTty = (dest as NodeJS.WriteStream).isTTY === true;
  const usePretty = opts.format === 'pretty' || (opts.format !== 'json' && isTty);
  const base = {
    level: opts.level ?? 'info',
    name: opts.name,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  if (usePretty) {
    return pino(base, pretty({ destination: dest, sync: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(base, dest as pino.DestinationStream);
}

/** A logger that prints nothing (tests, --quiet). */
export const silentLogger: Logger = pino({ level: 'silent' });
