/**
 * `geogridfs fsck`: check the whole grid from one host — metadata against
 * the bytes on every node this host can reach (config.nodes).
 *
 * For every live file: each current replica on a reachable node exists with
 * the right size (and, with `checksums`, the right sha256); the file has its
 * target of kept replicas (under / over). With `orphans`, each reachable
 * node folder is walked for files that are no replica of anything. Nothing
 * is changed unless `record` is set, which records the findings as problems.
 */
import { lstat, opendir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { MetaStore } from '../meta/store.js';
import { listNodes, type NodeRow } from '../meta/nodes.js';
import { liveFileIds, pendingDeletesByNode } from '../meta/replicas.js';
import { workFiles } from '../meta/queue.js';
import { recordProblem, type ProblemKind } from '../meta/problems.js';
import { HashPool } from '../storage/hash.js';
import { isReservedName } from '../storage/copy.js';
import { joinVirtual, onNode } from '../util/vpath.js';
import type { Logger } from '../util/log.js';

export interface FsckOptions {
  checksums?: boolean;
  orphans?: boolean;
  record?: boolean;
  signal?: AbortSignal;
  onFinding?: (f: Finding) => void;
}

export interface Finding {
  kind: 'missing' | 'size' | 'corrupt' | 'under' | 'over' | 'orphan' | 'unreachable';
  node: string | null;
  path: string;
  detail: string;
}

export interface FsckReport {
  files: number;
  replicasChecked: number;
  bytesHashed: number;
  findings: Record<Finding['kind'], number>;
  pendingNodeWork: number;
  unreachableNodes: string[];
  clean: boolean;
  elapsedMs: number;
}

async function reachable(config: Config, n: NodeRow): Promise<boolean> {
  const root = config.nodes[n.name];
  if (!root) return false;
  return lstat(root).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

export async function fsck(store: MetaStore, config: Config, log: Logger, opts: FsckOptions = {}): Promise<FsckReport> {
  const started = Date.now();
  const report: FsckReport = {
    files: 0, replicasChecked: 0, bytesHashed: 0,
    findings: { missing: 0, size: 0, corrupt: 0, under: 0, over: 0, orphan: 0, unreachable: 0 },
    pendingNodeWork: 0, unreachableNodes: [], clean: true, elapsedMs: 0,
  };
  const nodes = await listNodes(store);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const reach = new Map<number, boolean>();
  for (const n of nodes) {
    const ok = n.state !== 'dead' && (await reachable(config, n));
    reach.set(n.id, ok);
    if (!ok && n.state !== 'dead') report.unreachableNodes.push(n.name);
  }
  const pool = new HashPool({ concurrency: config.replicator.concurrency });
  const found = async (f: Finding, problem?: { kind: ProblemKind; nodeId: number | null; fileId: number | null }) => {
    report.findings[f.kind]++;
    opts.onFinding?.(f);
    if (opts.record && problem) await recordProblem(store, { kind: problem.kind, nodeId: problem.nodeId, fileId: problem.fileId, path: f.path, detail: `fsck: ${f.detail}` });
  };
  try {
    let after = 0;
    while (!opts.signal?.aborted) {
      const ids = await liveFileIds(store, after, 500);
      if (!ids.length) break;
      after = ids[ids.length - 1]!;
      const files = await workFiles(store, ids);
      const checks: Promise<void>[] = [];
      for (const f of files) {
        report.files++;
        const current = f.replicas.filter((r) => r.version === f.version);
        const kept = current.filter((r) => ['active', 'readonly'].includes(byId.get(r.nodeId)?.state ?? 'dead')).length;
        if (kept < f.replicaTarget) await found({ kind: 'under', node: null, path: f.path, detail: `${kept} of ${f.replicaTarget} copies` });
        if (kept > f.replicaTarget) await found({ kind: 'over', node: null, path: f.path, detail: `${kept} copies, target ${f.replicaTarget}` }, { kind: 'over-replicated', nodeId: null, fileId: f.id });
        for (const r of current) {
          const n = byId.get(r.nodeId);
          if (!n || !reach.get(n.id)) continue;
          const local = onNode(config.nodes[n.name]!, r.path);
          report.replicasChecked++;
          checks.push(
            (async () => {
              const st = await lstat(local).catch(() => null);
              if (!st || !st.isFile()) return found({ kind: 'missing', node: n.name, path: f.path, detail: `no file at ${local}` }, { kind: 'missing-replica', nodeId: n.id, fileId: f.id });
              if (st.size !== f.size) return found({ kind: 'size', node: n.name, path: f.path, detail: `${st.size} bytes on ${n.name}, metadata ${f.size}` }, { kind: 'size-mismatch', nodeId: n.id, fileId: f.id });
              if (opts.checksums) {
                const h = await pool.hash(local).catch((err: Error) => ({ checksum: `error: ${err.message}`, size: -1 }));
                report.bytesHashed += Math.max(0, h.size);
                if (h.checksum !== f.checksum) return found({ kind: 'corrupt', node: n.name, path: f.path, detail: `sha256 on ${n.name} ${h.checksum}, metadata ${f.checksum}` }, { kind: 'corrupt-replica', nodeId: n.id, fileId: f.id });
              }
              return undefined;
            })(),
          );
        }
      }
      await Promise.all(checks);
    }
    if (opts.orphans) {
      for (const n of nodes) {
        if (!reach.get(n.id)) continue;
        await findOrphans(store, config.nodes[n.name]!, n, opts, found);
      }
    }
    report.pendingNodeWork = (await pendingDeletesByNode(store)).reduce((a, b) => a + b.n, 0);
  } finally {
    await pool.close();
  }
  for (const name of report.unreachableNodes) {
    report.findings.unreachable++;
    opts.onFinding?.({ kind: 'unreachable', node: name, path: '/', detail: `node folder ${config.nodes[name] ?? '(not in config nodes)'} not reachable from this host: not checked` });
  }
  const f = report.findings;
  // a node that could not be looked at is not known to be clean
  report.clean = f.missing + f.size + f.corrupt + f.under + f.orphan + f.unreachable === 0;
  report.elapsedMs = Date.now() - started;
  log.debug({ report }, 'fsck done');
  return report;
}

/** Files in a node folder that are no replica (of a live or pending file) at that path. */
async function findOrphans(store: MetaStore, root: string, node: NodeRow, opts: FsckOptions, found: (f: Finding, p?: { kind: ProblemKind; nodeId: number | null; fileId: number | null }) => Promise<void>): Promise<void> {
  const check = async (vpaths: string[]) => {
    if (!vpaths.length) return;
    const known = await store.query<{ path: string }>(
      `SELECT p.path FROM unnest($2::text[]) AS p(path) WHERE EXISTS (SELECT 1 FROM replicas r WHERE r.node_id = $1 AND r.path = p.path COLLATE "C")`,
      [node.id, vpaths],
    );
    const set = new Set(known.map((k) => k.path));
    for (const v of vpaths) if (!set.has(v)) await found({ kind: 'orphan', node: node.name, path: v, detail: `a file on ${node.name} that metadata does not know (run \`geogridfs replicator walk\` there)` }, { kind: 'unknown-file', nodeId: node.id, fileId: null });
  };
  const visit = async (vdir: string, abs: string): Promise<void> => {
    const d = await opendir(abs).catch(() => null);
    if (!d) return;
    let batch: string[] = [];
    for await (const ent of d) {
      if (opts.signal?.aborted) break;
      if (isReservedName(ent.name)) continue;
      if (ent.isDirectory()) await visit(joinVirtual(vdir, ent.name), path.join(abs, ent.name));
      else if (ent.isFile()) {
        batch.push(joinVirtual(vdir, ent.name));
        if (batch.length >= 500) {
          await check(batch);
          batch = [];
        }
      }
    }
    await check(batch);
  };
  await visit('/', root);
}
