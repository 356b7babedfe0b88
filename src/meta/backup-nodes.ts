/**
 * Off-site backup nodes and their tokens.
 *
 * A token is `ggfs_<id>_<secret>`: the 16-hex-digit id is stored in clear for
 * lookup, the secret only as its sha256. Verification compares hashes in
 * constant time. A revoked node's token never verifies again.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from './store.js';
import { GeoError } from '../util/errors.js';

export interface BackupNodeRow {
  id: number;
  name: string;
  active: boolean;
  bytesPerSec: number | null;
  maxConcurrent: number;
  allowedHours: string | null;
  createdAt: Date;
  revokedAt: Date | null;
  lastSeenAt: Date | null;
  cursorSeq: number | null;
}

const COLUMNS = `id, name, active, bytes_per_sec AS "bytesPerSec", max_concurrent AS "maxConcurrent",
  allowed_hours::text AS "allowedHours", created_at AS "createdAt", revoked_at AS "revokedAt",
  last_seen_at AS "lastSeenAt", cursor_seq AS "cursorSeq"`;

const TOKEN_RE = /^ggfs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export interface ThrottleSettings {
  bytesPerSec?: number | null;
  maxConcurrent?: number;
  /** "[8,18)" style hour range, or null for any time */
  allowedHours?: string | null;
}

/** Parse "8-18" (hours, end exclusive) into a PostgreSQL int4range literal. */
export function parseHours(spec: string): string {
  const m = /^(\d{1,2})-(\d{1,2})$/.exec(spec.trim());
  if (!m) throw new GeoError('USAGE', `--hours must look like 22-6 or 0-24, got "${spec}"`);
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (a > 24 || b > 24) throw new GeoError('USAGE', `--hours: hours are 0-24, got "${spec}"`);
  if (a >= b) throw new GeoError('USAGE', `--hours: the window must not wrap midnight in one range (use e.g. 0-6), got "${spec}"`);
  return `[${a},${b})`;
}

/** Create a backup node; returns the row and the token, which is shown once and never stored. */
export async function addBackupNode(db: Queryable, name: string, throttle: ThrottleSettings = {}): Promise<{ node: BackupNodeRow; token: string }> {
  const tokenId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  try {
    const rows = await db.query<BackupNodeRow & Record<string, unknown>>(
      `INSERT INTO backup_nodes (name, token_id, token_hash, bytes_per_sec, max_concurrent, allowed_hours)
       VALUES ($1, $2, $3, $4, $5, $6::int4range) RETURNING ${COLUMNS}`,
      [name, tokenId, hashSecret(secret), throttle.bytesPerSec ?? null, throttle.maxConcurrent ?? 4, throttle.allowedHours ?? null],
    );
    return { node: rows[0]!, token: `ggfs_${tokenId}_${secret}` };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '23505') throw new GeoError('CONFLICT', `backup node "${name}" already exists`);
    if (code === '23514') throw new GeoError('USAGE', `invalid backup node name or setting for "${name}"`);
    throw err;
  }
}

export async function listBackupNodes(db: Queryable): Promise<BackupNodeRow[]> {
  return db.query<BackupNodeRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM backup_nodes ORDER BY name`);
}

export async function getBackupNode(db: Queryable, name: string): Promise<BackupNodeRow | null> {
  const rows = await db.query<BackupNodeRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM backup_nodes WHERE name = $1`, [name]);
  return rows[0] ?? null;
}

export async function revokeBackupNode(db: Queryable, name: string): Promise<BackupNodeRow> {
  const rows = await db.query<BackupNodeRow & Record<string, unknown>>(
    `UPDATE backup_nodes SET active = false, revoked_at = coalesce(revoked_at, now()) WHERE name = $1 RETURNING ${COLUMNS}`,
    [name],
  );
  if (!rows[0]) throw new GeoError('NOT_FOUND', `no backup node named "${name}"`);
  return rows[0];
}

export async function setThrottle(db: Queryable, name: string, t: ThrottleSettings): Promise<BackupNodeRow> {
  const rows = await db.query<BackupNodeRow & Record<string, unknown>>(
    `UPDATE backup_nodes SET
       bytes_per_sec = CASE WHEN $2::boolean THEN $3::bigint ELSE bytes_per_sec END,
       max_concurrent = coalesce($4, max_concurrent),
       allowed_hours = CASE WHEN $5::boolean THEN $6::int4range ELSE allowed_hours END
     WHERE name = $1 RETURNING ${COLUMNS}`,
    [name, t.bytesPerSec !== undefined, t.bytesPerSec ?? null, t.maxConcurrent ?? null, t.allowedHours !== undefined, t.allowedHours ?? null],
  );
  if (!rows[0]) throw new GeoError('NOT_FOUND', `no backup node named "${name}"`);
  return rows[0];
}

/**
 * The active backup node a token belongs to, or null (malformed, unknown,
 * wrong secret or revoked). Constant-time in the secret.
 */
export async function verifyToken(db: Queryable, token: string): Promise<BackupNodeRow | null> {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const rows = await db.query<BackupNodeRow & { tokenHash: Buffer } & Record<string, unknown>>(
    `SELECT ${COLUMNS}, token_hash AS "tokenHash" FROM backup_nodes WHERE token_id = $1`,
    [m[1]],
  );
  const row = rows[0];
  const expected = row?.tokenHash ?? Buffer.alloc(32);
  const ok = timingSafeEqual(expected, hashSecret(m[2]!));
  if (!row || !ok || !row.active) return null;
  const { tokenHash: _drop, ...node } = row;
  return node as BackupNodeRow;
}
