/**
 * The API request log (table api_requests): who, what, status, bytes,
 * duration. Never holds a token or a query string: `route` is the route
 * pattern (e.g. GET /api/v1/content), and the path asked for is not kept.
 * Bounded by `trimRequestLog`.
 */
import type { Queryable } from './store.js';

export interface RequestLogEntry {
  at: Date;
  backupNodeId: number | null;
  method: string;
  route: string;
  status: number;
  bytes: number;
  durationMs: number;
  remote: string | null;
}

export interface RequestLogRow extends RequestLogEntry {
  id: number;
  backupNodeName: string | null;
}

/** Insert a batch of entries in one statement. */
export async function insertRequests(db: Queryable, entries: readonly RequestLogEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.query(
    `INSERT INTO api_requests (at, backup_node_id, method, route, status, bytes, duration_ms, remote)
     SELECT * FROM unnest($1::timestamptz[], $2::int[], $3::text[], $4::text[], $5::smallint[], $6::bigint[], $7::int[], $8::text[])`,
    [
      entries.map((e) => e.at),
      entries.map((e) => e.backupNodeId),
      entries.map((e) => e.method.slice(0, 16)),
      entries.map((e) => e.route.slice(0, 200)),
      entries.map((e) => e.status),
      entries.map((e) => Math.max(0, Math.round(e.bytes))),
      entries.map((e) => Math.max(0, Math.round(e.durationMs))),
      entries.map((e) => e.remote?.slice(0, 64) ?? null),
    ],
  );
}

/** Keep only the newest `keep` rows (ids are increasing: one index range delete). */
export async function trimRequestLog(db: Queryable, keep: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `WITH d AS (DELETE FROM api_requests WHERE id <= (SELECT max(id) - $1 FROM api_requests) RETURNING 1) SELECT count(*)::int AS n FROM d`,
    [keep],
  );
  return rows[0]?.n ?? 0;
}

export async function recentRequests(db: Queryable, limit = 30): Promise<RequestLogRow[]> {
  return db.query<RequestLogRow & Record<string, unknown>>(
    `SELECT r.id, r.at, r.backup_node_id AS "backupNodeId", bn.name AS "backupNodeName", r.method, r.route, r.status,
            r.bytes, r.duration_ms AS "durationMs", r.remote
       FROM api_requests r LEFT JOIN backup_nodes bn ON bn.id = r.backup_node_id
      ORDER BY r.id DESC LIMIT $1`,
    [limit],
  );
}

/** Requests and bytes per backup node over the last `minutes` (dashboard activity). */
export async function requestTotals(db: Queryable, minutes = 60): Promise<{ name: string | null; requests: number; bytes: number; errors: number }[]> {
  return db.query(
    `SELECT bn.name, count(*)::bigint AS requests, coalesce(sum(r.bytes), 0)::bigint AS bytes,
            count(*) FILTER (WHERE r.status >= 400)::bigint AS errors
       FROM api_requests r LEFT JOIN backup_nodes bn ON bn.id = r.backup_node_id
      WHERE r.at > now() - make_interval(mins => $1)
      GROUP BY bn.name ORDER BY bn.name NULLS FIRST`,
    [minutes],
  );
}

/** Requests and bytes per minute over the last `minutes` (for the dashboard's activity chart). */
export async function requestsPerMinute(db: Queryable, minutes = 60): Promise<{ minute: Date; requests: number; bytes: number; errors: number }[]> {
  return db.query(
    `SELECT date_trunc('minute', at) AS minute, count(*)::bigint AS requests, coalesce(sum(bytes), 0)::bigint AS bytes,
            count(*) FILTER (WHERE status >= 400)::bigint AS errors
       FROM api_requests WHERE at > now() - make_interval(mins => $1)
      GROUP BY 1 ORDER BY 1`,
    [minutes],
  );
}
