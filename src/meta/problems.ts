/**
 * Problems found by the mount, replicators, scrub, the API and backup hosts.
 * An open problem is recorded once per (kind, node, backup node, path); the
 * table is bounded by `trimProblems`.
 */
import type { Queryable } from './store.js';

export type ProblemKind =
  | 'checksum-mismatch'
  | 'size-mismatch'
  | 'missing-replica'
  | 'missing-source'
  | 'unknown-file'
  | 'copy-failed'
  | 'corrupt-replica'
  | 'backup-mismatch'
  | 'backup-unknown-file'
  | 'journal-conflict'
  | 'over-replicated'
  | 'other';

export interface ProblemInput {
  kind: ProblemKind;
  nodeId?: number | null;
  backupNodeId?: number | null;
  fileId?: number | null;
  path?: string | null;
  detail?: string;
}

export interface ProblemRow {
  id: number;
  kind: ProblemKind;
  nodeName: string | null;
  backupNodeName: string | null;
  path: string | null;
  detail: string;
  createdAt: Date;
  resolvedAt: Date | null;
}

/** Record a problem (an identical open one is refreshed, not duplicated). */
export async function recordProblem(db: Queryable, p: ProblemInput): Promise<void> {
  await db.query(
    `INSERT INTO problems (kind, node_id, backup_node_id, file_id, path, detail) VALUES ($1, $2, $3, $4, $5, left($6, 8000))
     ON CONFLICT (kind, coalesce(node_id, 0), coalesce(backup_node_id, 0), coalesce(path, '')) WHERE resolved_at IS NULL
     DO UPDATE SET detail = EXCLUDED.detail, created_at = now(), file_id = coalesce(EXCLUDED.file_id, problems.file_id)`,
    [p.kind, p.nodeId ?? null, p.backupNodeId ?? null, p.fileId ?? null, p.path ?? null, p.detail ?? ''],
  );
}

/** Mark open problems of a kind on a path (and node) resolved. */
export async function resolveProblems(db: Queryable, kind: ProblemKind, path: string, nodeId?: number | null): Promise<void> {
  await db.query(
    `UPDATE problems SET resolved_at = now() WHERE resolved_at IS NULL AND kind = $1 AND path = $2 AND ($3::int IS NULL OR node_id = $3)`,
    [kind, path, nodeId ?? null],
  );
}

export async function recentProblems(db: Queryable, limit = 50, openOnly = false): Promise<ProblemRow[]> {
  return db.query<ProblemRow & Record<string, unknown>>(
    `SELECT p.id, p.kind, n.name AS "nodeName", bn.name AS "backupNodeName", p.path, p.detail,
            p.created_at AS "createdAt", p.resolved_at AS "resolvedAt"
       FROM problems p LEFT JOIN nodes n ON n.id = p.node_id LEFT JOIN backup_nodes bn ON bn.id = p.backup_node_id
      WHERE ($2::boolean IS false OR p.resolved_at IS NULL)
      ORDER BY p.created_at DESC LIMIT $1`,
    [limit, openOnly],
  );
}

/** Keep the table bounded: delete the oldest beyond `keep` rows (resolved ones first). */
export async function trimProblems(db: Queryable, keep = 10_000): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `WITH doomed AS (SELECT id FROM problems ORDER BY (resolved_at IS NULL) DESC, created_at DESC OFFSET $1)
     DELETE FROM problems WHERE id IN (SELECT id FROM doomed) RETURNING 1 AS n`,
    [keep],
  );
  return rows.length;
}
