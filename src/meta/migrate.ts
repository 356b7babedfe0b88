/**
 * The migration runner: applies `sql/NNNN_name.sql` in order, each in its own
 * transaction, recording what it applied (with the file's sha256) in
 * `schema_migrations`. Idempotent; serialised across processes by an
 * advisory lock; refuses a database whose schema is newer than this code.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { MetaStore, Queryable } from './store.js';
import { GeoError } from '../util/errors.js';

export const SQL_DIR = fileURLToPath(new URL('../../../sql/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  file: string;
  sha256: string;
  sql: string;
}

export interface MigrationStatus {
  applied: { version: number; name: string; appliedAt: Date }[];
  pending: Migration[];
  codeVersion: number;
  dbVersion: number;
}

/** The migrations shipped with this code, in order. */
export async function listMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => /^\d{4}_[a-z0-9_]+\.sql$/.test(n)).sort();
  const out: Migration[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const sql = await readFile(file, 'utf8');
    out.push({ version: Number(name.slice(0, 4)), name: name.replace(/\.sql$/, ''), file, sql, sha256: createHash('sha256').update(sql).digest('hex') });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration numbering has a gap or duplicate at ${m.name}`);
  });
  return out;
}

const LOCK_KEY = 'geogridfs:migrate';

async function ensureTable(db: Queryable): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
}

async function applied(db: Queryable): Promise<{ version: number; name: string; sha256: string; applied_at: Date }[]> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('schema_migrations')::text AS t`);
  if (!exists[0]?.t) return [];
  return db.query('SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version');
}

export async function migrationStatus(store: MetaStore): Promise<MigrationStatus> {
  const code = await listMigrations();
  const done = await applied(store);
  const doneSet = new Set(done.map((d) => d.version));
  return {
    applied: done.map((d) => ({ version: d.version, name: d.name, appliedAt: d.applied_at })),
    pending: code.filter((m) => !doneSet.has(m.version)),
    codeVersion: code.length,
    dbVersion: done.length ? Math.max(...done.map((d) => d.version)) : 0,
  };
}

/**
 * Apply every pending migration. Returns the names applied (empty when up to
 * date). Throws DB_SCHEMA_NEWER when the database knows migrations this code
 * does not.
 */
export async function migrate(store: MetaStore): Promise<string[]> {
  const code = await listMigrations();
  const appliedNow: string[] = [];
  await store.txn(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [LOCK_KEY]);
    await ensureTable(tx);
  });
  for (;;) {
    const did = await store.txn(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [LOCK_KEY]);
      const done = await applied(tx);
      const newest = done.length ? Math.max(...done.map((d) => d.version)) : 0;
      if (newest > code.length) {
        throw new GeoError('DB_SCHEMA_NEWER', `the database schema is at version ${newest} but this geogridfs knows only ${code.length}: upgrade geogridfs`);
      }
      for (const d of done) {
        const m = code[d.version - 1];
        if (m && m.sha256 !== d.sha256) {
          throw new GeoError('DB_SCHEMA_NEWER', `migration ${m.name} was applied from a different file (checksum differs): the database and this code disagree`);
        }
      }
      const next = code[newest];
      if (!next) return null;
      await tx.query(next.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)', [next.version, next.name, next.sha256]);
      return next.name;
    });
    if (did === null) break;
    appliedNow.push(did);
  }
  return appliedNow;
}

/** Throw DB_SCHEMA_OLD / DB_SCHEMA_NEWER unless the schema matches this code exactly. */
export async function assertSchemaCurrent(store: MetaStore): Promise<void> {
  const s = await migrationStatus(store);
  if (s.dbVersion > s.codeVersion) throw new GeoError('DB_SCHEMA_NEWER', `the database schema (version ${s.dbVersion}) is newer than this geogridfs (${s.codeVersion}): upgrade geogridfs`);
  if (s.pending.length) throw new GeoError('DB_SCHEMA_OLD', `the database schema is at version ${s.dbVersion}, this geogridfs needs ${s.codeVersion}: run \`geogridfs db migrate\``);
}
