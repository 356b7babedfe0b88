/**
 * GET /api/v1/stats (grid figures as JSON), GET /api/v1/dashboard (what the
 * dashboard page shows) and GET /metrics (Prometheus text). The figures are
 * computed at query time and cached for a few seconds, so a dashboard left
 * open on many screens costs one computation per interval.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from '../server.js';
import { gridStats, type GridStats } from '../../meta/stats.js';
import { recentProblems } from '../../meta/problems.js';
import { recentRequests, requestTotals, requestsPerMinute } from '../../meta/request-log.js';
import { latestSeq } from '../../meta/feed.js';
import { backupProgress } from '../../meta/backups.js';

const CACHE_MS = 3000;

/**
 * For figures that scan every file (seconds on millions of files): answer
 * from the last value at once and refresh in the background when it is
 * older than max(minTtlMs, 5 × the last computation), so a dashboard left
 * open costs the database at most a fifth of its time.
 */
export function staleWhileRefresh<T>(fn: () => Promise<T>, minTtlMs: number): () => Promise<T> {
  let value: { v: T; at: number } | null = null;
  let ttl = minTtlMs;
  let inFlight: Promise<T> | null = null;
  const refresh = (): Promise<T> => {
    if (inFlight) return inFlight;
    const started = Date.now();
    inFlight = fn().then(
      (v) => {
        value = { v, at: Date.now() };
        ttl = Math.max(minTtlMs, 5 * (Date.now() - started));
        inFlight = null;
        return v;
      },
      (err: unknown) => {
        inFlight = null;
        throw err;
      },
    );
    return inFlight;
  };
  return () => {
    if (!value) return refresh();
    if (Date.now() - value.at > ttl) refresh().catch(() => undefined);
    return Promise.resolve(value.v);
  };
}

function cached<T>(fn: () => Promise<T>): () => Promise<T> {
  let at = 0;
  let value: Promise<T> | null = null;
  return () => {
    const now = Date.now();
    if (!value || now - at > CACHE_MS) {
      at = now;
      value = fn();
      value.catch(() => {
        value = null;
      });
    }
    return value;
  };
}

/** Prometheus label value escaping. */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function metricsText(s: GridStats, inFlight: Map<string, number>): string {
  const out: string[] = [];
  const metric = (name: string, help: string, type: 'gauge' | 'counter', samples: [Record<string, string>, number | null][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      if (value === null || !Number.isFinite(value)) continue;
      const l = Object.entries(labels).map(([k, v]) => `${k}="${label(v)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${value}`);
    }
  };
  metric('geogridfs_files', 'Live files', 'gauge', [[{}, s.files]]);
  metric('geogridfs_bytes', 'Bytes in live files', 'gauge', [[{}, s.bytes]]);
  metric('geogridfs_folders', 'Folders', 'gauge', [[{}, s.folders]]);
  metric('geogridfs_replication_queue', 'Files queued for replication work', 'gauge', [[{}, s.queue]]);
  metric('geogridfs_open_problems', 'Open problems', 'gauge', [[{}, s.openProblems]]);
  metric('geogridfs_node_up', 'Node state (1 for the state it is in)', 'gauge', s.nodes.map((n) => [{ node: n.name, state: n.state }, 1]));
  metric('geogridfs_node_capacity_bytes', 'Node capacity', 'gauge', s.nodes.map((n) => [{ node: n.name }, n.capacityBytes]));
  metric('geogridfs_node_free_bytes', 'Node free space', 'gauge', s.nodes.map((n) => [{ node: n.name }, n.freeBytes]));
  metric('geogridfs_node_heartbeat_age_seconds', 'Seconds since the node\'s last heartbeat', 'gauge', s.nodes.map((n) => [{ node: n.name }, n.heartbeatAgeSec]));
  metric('geogridfs_node_files', 'Current replicas held by the node', 'gauge', s.nodes.map((n) => [{ node: n.name }, n.files]));
  metric('geogridfs_class_files', 'Files per class and compliance with the replica target', 'gauge',
    s.classes.flatMap((c) => [
      [{ class: c.class, compliance: 'under' }, c.under] as [Record<string, string>, number],
      [{ class: c.class, compliance: 'at' }, c.at] as [Record<string, string>, number],
      [{ class: c.class, compliance: 'over' }, c.over] as [Record<string, string>, number],
    ]));
  metric('geogridfs_class_under_bytes', 'Bytes in files under their replica target', 'gauge', s.classes.map((c) => [{ class: c.class }, c.underBytes]));
  metric('geogridfs_backup_held_files', 'Current-version files held by a backup node', 'gauge', s.backupNodes.map((b) => [{ backup_node: b.name }, b.held]));
  metric('geogridfs_backup_behind_files', 'Files a backup node still lacks', 'gauge', s.backupNodes.map((b) => [{ backup_node: b.name }, b.behindFiles]));
  metric('geogridfs_backup_behind_bytes', 'Bytes a backup node still lacks', 'gauge', s.backupNodes.map((b) => [{ backup_node: b.name }, b.behindBytes]));
  metric('geogridfs_backup_last_seen_age_seconds', 'Seconds since a backup node last called the API', 'gauge', s.backupNodes.map((b) => [{ backup_node: b.name }, b.lastSeenAgeSec]));
  metric('geogridfs_api_downloads_in_flight', 'Downloads being served per backup node', 'gauge', [...inFlight].map(([name, n]) => [{ backup_node: name }, n]));
  return out.join('\n') + '\n';
}

export async function registerStatsRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  // backup figures count, per backup node, only the files it is chosen to hold
  const stats = staleWhileRefresh(async (): Promise<GridStats> => {
    const [s, progress] = await Promise.all([gridStats(ctx.store), backupProgress(ctx.store)]);
    return { ...s, backupNodes: progress };
  }, CACHE_MS);
  const classBytesCached = staleWhileRefresh(
    () =>
      ctx.store.query<{ class: string; atBytes: number; overBytes: number }>(
        `SELECT class, coalesce(sum(size) FILTER (WHERE kept_replicas = replica_target), 0)::bigint AS "atBytes",
                coalesce(sum(size) FILTER (WHERE kept_replicas > replica_target), 0)::bigint AS "overBytes"
           FROM file_replica_counts GROUP BY class`,
      ),
    CACHE_MS,
  );
  const dashboard = cached(async () => {
    const [s, problems, requests, totals, perMinute, seq, changes, classBytes] = await Promise.all([
      stats(),
      recentProblems(ctx.store, 20),
      recentRequests(ctx.store, 25),
      requestTotals(ctx.store, 60),
      requestsPerMinute(ctx.store, 60),
      latestSeq(ctx.store),
      ctx.store.query(
        `SELECT path, (deleted_at IS NOT NULL) AS deleted, version, size, seq FROM files ORDER BY seq DESC LIMIT 15`,
      ),
      // bytes at and over target per class (stats has the counts and the bytes under target)
      classBytesCached(),
    ]);
    return { generatedAt: new Date().toISOString(), stats: s, classBytes, problems, requests, totals, perMinute, latestSeq: seq, changes };
  });
  const inFlightByName = async (): Promise<Map<string, number>> => {
    const ids = ctx.throttle.inFlight();
    if (ids.size === 0) return new Map();
    const rows = await ctx.store.query<{ id: number; name: string }>('SELECT id, name FROM backup_nodes WHERE id = ANY($1::int[])', [[...ids.keys()]]);
    return new Map(rows.map((r) => [r.name, ids.get(r.id) ?? 0]));
  };

  app.get('/api/v1/stats', { config: { auth: 'viewer' } }, async () => stats());
  app.get('/api/v1/dashboard', { config: { auth: 'viewer' } }, async (_req, reply: FastifyReply) => {
    reply.header('cache-control', 'no-store');
    return dashboard();
  });
  app.get('/metrics', { config: { auth: 'viewer' } }, async (_req, reply: FastifyReply) => {
    const [s, inFlight] = await Promise.all([stats(), inFlightByName()]);
    reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return metricsText(s, inFlight);
  });
}
