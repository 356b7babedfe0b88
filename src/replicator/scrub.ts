/**
 * `replicator scrub`: re-read this node's replicas, least recently verified
 * first, at a bounded rate (config.replicator.scrubBytesPerSec), and compare
 * them with metadata.
 *
 * - Good: verified_at is refreshed.
 * - Missing: a problem is recorded and the replica row removed (the trigger
 *   re-queues the file; replicate restores the target from a good copy).
 * - Corrupt (size or checksum differs): a problem is recorded; when another
 *   good copy exists the bytes are moved to <root>/.ggfs-quarantine/ and the
 *   row removed, as above. The only copy of a file is never moved or
 *   forgotten: it stays in place, reported.
 */
import { lstat, mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { ReplicatorContext } from './context.js';
import { lockKey } from './replicate.js';
import { tryLocked } from './locks.js';
import { checkNodeFolder } from './context.js';
import { dropReplica, markVerified, otherCurrentCopies, replicasToScrub, type ScrubCursor } from '../meta/replicas.js';
import { recordProblem } from '../meta/problems.js';
import { QUARANTINE_DIR } from '../storage/copy.js';
import { onNode } from '../util/vpath.js';
import { getFileById } from '../meta/files.js';

/** A differing copy modified this recently is taken as being written, not corrupt. */
const RECENT_WRITE_MS = 60_000;

export interface ScrubOptions {
  /** re-verify replicas not verified for this long (default 0: all) */
  olderThanSec?: number;
  /** stop after this long (default: no limit) */
  budgetSec?: number;
  /** read rate (default config.replicator.scrubBytesPerSec) */
  bytesPerSec?: number;
}

export interface ScrubStats {
  locked: boolean;
  checked: number;
  bytes: number;
  good: number;
  missing: number;
  corrupt: number;
  quarantined: number;
  /** corrupt but the only copy: left in place */
  keptLastCopy: number;
  /** changed or being written while checked: left for the next scrub */
  skipped: number;
  errors: number;
  elapsedMs: number;
}

export async function scrub(ctx: ReplicatorContext, opts: ScrubOptions = {}): Promise<ScrubStats> {
  const stats: ScrubStats = { locked: false, checked: 0, bytes: 0, good: 0, missing: 0, corrupt: 0, quarantined: 0, keptLastCopy: 0, skipped: 0, errors: 0, elapsedMs: 0 };
  const started = Date.now();
  const release = await ctx.store.tryAdvisoryLock(`${lockKey(ctx.node.name)}:scrub`);
  if (!release) {
    stats.locked = true;
    return stats;
  }
  const { store, node, root, log } = ctx;
  try {
    await checkNodeFolder(ctx);
  } catch (err) {
    await release();
    throw err;
  }
  const rate = opts.bytesPerSec ?? ctx.config.replicator.scrubBytesPerSec;
  const before = new Date(Date.now() - (opts.olderThanSec ?? 0) * 1000);
  let cursor: ScrubCursor | null = null;
  try {
    for (;;) {
      if (ctx.signal?.aborted) break;
      if (opts.budgetSec !== undefined && Date.now() - started > opts.budgetSec * 1000) break;
      const items = await replicasToScrub(store, node.id, before, 100, cursor);
      if (!items.length) break;
      const last = items[items.length - 1]!;
      cursor = { verifiedAt: last.verifiedAt, fileId: last.fileId };
      for (const it of items) {
        if (ctx.signal?.aborted) break;
        // deleted, renamed or stale replicas are replicate's business
        if (it.deleted || it.version !== it.fileVersion || it.nodePath !== it.path || !it.checksum) continue;
        stats.checked++;
        const local = onNode(root, it.nodePath);
        try {
          const h = await ctx.pool.hash(local, rate);
          stats.bytes += h.size;
          if (h.size === it.size && h.checksum === it.checksum) {
            stats.good++;
            await markVerified(store, it.fileId, node.id);
            continue;
          }
          // a writer (the mount) may be rewriting this file right now, or have committed a new
          // version since this page was read: that is not corruption
          const current = await getFileById(store, it.fileId);
          const st = await lstat(local).catch(() => null);
          if (!current || current.deletedAt || current.version !== it.fileVersion || (st && Date.now() - st.mtimeMs < RECENT_WRITE_MS)) {
            stats.skipped++;
            continue;
          }
          stats.corrupt++;
          const others = await otherCurrentCopies(store, it.fileId, node.id);
          const detail = `scrub on ${node.name}: ${h.size} bytes sha256 ${h.checksum}, metadata ${it.size} bytes sha256 ${it.checksum}`;
          if (others === 0) {
            stats.keptLastCopy++;
            await recordProblem(store, { kind: 'corrupt-replica', nodeId: node.id, fileId: it.fileId, path: it.path, detail: `${detail}; the only copy: left in place` });
            continue;
          }
          const q = path.join(root, QUARANTINE_DIR, `${it.nodePath}.${Date.now()}`);
          await mkdir(path.dirname(q), { recursive: true });
          // holding the path's lock (no mount changes it meanwhile): move the bytes away first, then
          // forget the replica (refused if it became the last copy meanwhile: then the bytes go back).
          // In this order a copy that replicate places here after the row is gone can never be the file
          // moved away.
          const moved = await tryLocked(ctx, [it.nodePath, it.path], async (db) => {
            await rename(local, q);
            if ((await dropReplica(db, it.fileId, node.id, 'corrupt', it.nodePath)) === null) {
              await rename(q, local);
              return false;
            }
            return true;
          });
          if (!moved) {
            stats.skipped++; // in use right now: the next scrub looks again
            continue;
          }
          if (!moved.value) {
            stats.keptLastCopy++;
            await recordProblem(store, { kind: 'corrupt-replica', nodeId: node.id, fileId: it.fileId, path: it.path, detail: `${detail}; the only copy: left in place` });
            continue;
          }
          stats.quarantined++;
          await recordProblem(store, { kind: 'corrupt-replica', nodeId: node.id, fileId: it.fileId, path: it.path, detail: `${detail}; moved to ${path.relative(root, q)}, will be restored from a good copy` });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && !(await lstat(local).catch(() => null))) {
            stats.missing++;
            await dropReplica(store, it.fileId, node.id, 'missing');
            await recordProblem(store, { kind: 'missing-replica', nodeId: node.id, fileId: it.fileId, path: it.path, detail: `scrub on ${node.name}: the file is missing; replica dropped, will be restored from a good copy` });
            continue;
          }
          stats.errors++;
          log.error({ path: it.path, err: (err as Error).message }, 'scrub: cannot verify');
        }
      }
    }
  } finally {
    await release();
  }
  stats.elapsedMs = Date.now() - started;
  return stats;
}

export function formatScrubSummary(s: ScrubStats): string {
  if (s.locked) return 'scrub: another scrub of this node is running; nothing done';
  return (
    `scrub: ${s.checked} replicas checked (${(s.bytes / 2 ** 20).toFixed(1)} MiB in ${(s.elapsedMs / 1000).toFixed(1)}s): ${s.good} good, ` +
    `${s.corrupt} corrupt (${s.quarantined} quarantined, ${s.keptLastCopy} only copies kept), ${s.missing} missing, ${s.skipped} changing, ${s.errors} errors`
  );
}
