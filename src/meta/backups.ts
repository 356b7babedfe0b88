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
       -- DISTINCT: a batch may name a file twice (an agent retrying a report); ON CONFLICT cannot touch a row twice
       SELECT DISTINCT id, $1::bigint, version, now() FROM checked WHERE reason IS NULL
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

/** An active backup node as the assignment of files needs it. */
export interface ActiveBackupNode {
  id: number;
  name: string;
}

/** The active backup nodes, by name. */
export async function activeBackupNodes(db: Queryable): Promise<ActiveBackupNode[]> {
  return db.query<ActiveBackupNode & Record<string, unknown>>(`SELECT id, name FROM backup_nodes WHERE active ORDER BY name COLLATE "C"`);
}

/**
 * SQL for the rendezvous weight of backup node `n` for file `f`: the first
 * 52 bits of sha256("<file id>\0<node name>") as a bigint — the same number
 * as src/replicator/rendezvous.ts weight() × 2^52, so SQL and JS pick the
 * same nodes (test/backup/assignment.test.ts compares them).
 */
const WEIGHT_SQL = `(('x' || encode(substr(sha256(convert_to(f.id::text, 'UTF8') || '\\x00'::bytea || convert_to(n.name, 'UTF8')), 1, 7), 'hex'))::bit(56)::bigint >> 4)`;

/** Per backup node: files it should hold (its rendezvous share), held at their current version, and behind. */
export interface BackupProgress {
  name: string;
  active: boolean;
  lastSeenAgeSec: number | null;
  /** live files whose class wants backups and that this node is chosen for */
  wanted: number;
  wantedBytes: number;
  /** of those, held at the current version */
  held: number;
  heldBytes: number;
  behindFiles: number;
  behindBytes: number;
}

/**
 * Backup progress per backup node, counting only the files each node should
 * hold: a live file with backup target k is assigned to the k active backup
 * nodes of highest rendezvous weight. One pass over the wanted files (for the
 * dashboard, which caches it).
 */
export async function backupProgress(db: Queryable): Promise<BackupProgress[]> {
  return db.query<BackupProgress & Record<string, unknown>>(
    `WITH ranked AS (
       SELECT f.id, f.size, f.version, n.id AS node_id,
              row_number() OVER (PARTITION BY f.id ORDER BY ${WEIGHT_SQL} DESC, n.name COLLATE "C") AS rank, f.backup_target
         FROM files f CROSS JOIN backup_nodes n
        WHERE f.deleted_at IS NULL AND f.kind = 'file' AND f.backup_target > 0 AND n.active),
     assigned AS (
       SELECT r.node_id, count(*) AS wanted, sum(r.size) AS wanted_bytes,
              count(b.file_id) AS held, coalesce(sum(r.size) FILTER (WHERE b.file_id IS NOT NULL), 0) AS held_bytes
         FROM ranked r LEFT JOIN backups b ON b.file_id = r.id AND b.backup_node_id = r.node_id AND b.version = r.version
        WHERE r.rank <= r.backup_target
        GROUP BY r.node_id)
     SELECT bn.name, bn.active, extract(epoch FROM now() - bn.last_seen_at)::float8 AS "lastSeenAgeSec",
            coalesce(a.wanted, 0)::bigint AS wanted, coalesce(a.wanted_bytes, 0)::bigint AS "wantedBytes",
            coalesce(a.held, 0)::bigint AS held, coalesce(a.held_bytes, 0)::bigint AS "heldBytes",
            coalesce(a.wanted - a.held, 0)::bigint AS "behindFiles", coalesce(a.wanted_bytes - a.held_bytes, 0)::bigint AS "behindBytes"
       FROM backup_nodes bn LEFT JOIN assigned a ON a.node_id = bn.id
      ORDER BY bn.name`,
  );
}

/** The backup nodes SQL assigns to each of the given files (for tests comparing SQL with the JS rendezvous). */
export async function assignedInSql(db: Queryable, fileIds: readonly number[]): Promise<Map<number, string[]>> {
  const rows = await db.query<{ id: number; names: string[] }>(
    `SELECT id, array_agg(name ORDER BY rank) AS names FROM (
       SELECT f.id, n.name, f.backup_target,
              row_number() OVER (PARTITION BY f.id ORDER BY ${WEIGHT_SQL} DESC, n.name COLLATE "C") AS rank
         FROM files f CROSS JOIN backup_nodes n WHERE f.id = ANY($1::bigint[]) AND n.active) x
      WHERE rank <= backup_target GROUP BY id`,
    [fileIds],
  );
  return new Map(rows.map((r) => [Number(r.id), r.names]));
}
