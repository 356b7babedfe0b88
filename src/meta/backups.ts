/**
 * What the off-site backup hosts hold. The server records a backup only when
 * the reported checksum and version are those of the file's current
 * version: a backup host's report is checked, never trusted blindly.
 */
import type { Queryable } from './store.js';

export interface HeldReport {
  id: number;
  version: number;
  checksum: string;
}

export type HeldRejection = 'unknown' | 'stale' | 'checksum-mismatch';

export interface HeldResult {
  accepted: number;
  rejected: { id: number; reason: HeldRejection }[];
}

/**
 * Record the files a backup node holds (one statement for the batch).
 * Items whose file is gone, whose version is not current, or whose checksum
 * differs from the current one are rejected with a reason.
 */
export async function recordHeld(db: Queryable, backupNodeId: number, items: readonly HeldReport[]): Promise<HeldResult> {
  if (items.length === 0) return { accepted: 0, rejected: [] };
  const rows = await db.query<{ id: number; reason: HeldRejection | null }>(
    `WITH r AS (SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS r(id, version, checksum)),
     checked AS (
       SELECT r.id, r.version,
              CASE WHEN f.id IS NULL OR f.deleted_at IS NOT NULL OR f.kind <> 'file' THEN 'unknown'
                   WHEN f.version <> r.version THEN 'stale'
                   WHEN f.checksum <> r.checksum THEN 'checksum-mismatch' END AS reason
         FROM r LEFT JOIN files f ON f.id = r.id),
     ins AS (
       INSERT INTO backups (file_id, backup_node_id, version, verified_at)
       SELECT id, $1, version, now() FROM checked WHERE reason IS NULL
       ON CONFLICT (file_id, backup_node_id) DO UPDATE SET version = EXCLUDED.version, verified_at = now()
       RETURNING 1)
     SELECT id, reason FROM checked`,
    [backupNodeId, items.map((i) => i.id), items.map((i) => i.version), items.map((i) => i.checksum)],
  );
  const rejected = rows.filter((r) => r.reason !== null).map((r) => ({ id: r.id, reason: r.reason! }));
  return { accepted: rows.length - rejected.length, rejected };
}

/** Note that a backup node was seen, and (for feed reads) the cursor it asked after. */
export async function touchBackupNode(db: Queryable, backupNodeId: number, cursorSeq?: number): Promise<void> {
  await db.query(
    `UPDATE backup_nodes SET last_seen_at = now(), cursor_seq = CASE WHEN $2::bigint IS NULL THEN cursor_seq ELSE $2::bigint END WHERE id = $1`,
    [backupNodeId, cursorSeq ?? null],
  );
}
