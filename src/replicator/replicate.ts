/**
 * `replicator replicate`: one run of this node's replicator (cron, every
 * minute; `watch` calls it on every wake-up).
 *
 * 1. Take the node's advisory lock; an overlapping run returns at once.
 * 2. Heartbeat (statfs of the local folder -> nodes.free/capacity).
 * 3. Apply this node's pending deletes and renames (node_work).
 * 4. Page through the due replication queue (index range; the cost grows
 *    with the backlog, not with the file count) and, per file, do this
 *    node's part as decided by placement.ts: copy the file here (claimed,
 *    from a healthy source with fallback, verified, atomic), drop a drained,
 *    stale or (with --trim) surplus copy once the others suffice, and remove
 *    the entry when nothing is left for anybody.
 * 5. Stop taking new work after the time or byte budget.
 */
import { rmdir, statfs, lstat, mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { ReplicatorContext } from './context.js';
import { checkNodeFolder, refreshNode } from './context.js';
import { plan, type PlacementNode } from './placement.js';
import { rank } from './rendezvous.js';
import { placementNodes, dropReplica, type DropReason } from '../meta/replicas.js';
import { heartbeat } from '../meta/nodes.js';
import {
  claimCopies, clearOverReplicated, deferQueued, dueWork, enqueue, enqueue as enqueueNow, expireClaims, finishNodeWork, markOverReplicated, moveReplicaLocked, nodeWork, nodeWorkItem, underFileLock,
  overReplicated, pathHeldOnNode, pathTakenOnNode, recordCopies, releaseClaims, releaseNodeClaims, removeQueued, renewClaims, workFiles, type NodeWorkItem, type QueueCursor, type QueueEntry, type WorkFile,
} from '../meta/queue.js';
import { recordProblem, resolveProblems } from '../meta/problems.js';
import { copyToTemp, fsyncDir, placeTemp, removeCreatedDirs, removeStaleReplicaTemps, SourceMismatchError, type CreatedDir } from '../storage/copy.js';
import { onNode } from '../util/vpath.js';
import { isConnectionError, type LockedDb, type Queryable } from '../meta/store.js';
import { tryLocked } from './locks.js';
import { getFile, getFileById, recordReplica, replicasOf } from '../meta/files.js';

/** A source modified this recently that does not match metadata is taken as being written, not corrupt. */
const RECENT_WRITE_MS = 60_000;

/** A file no node can take for this long is re-examined only once a minute. */
const STUCK_AFTER_SEC = 300;

/** Queue reason of a file whose copy failed with ENOENT once (retried shortly before it counts as a failure). */
const VANISHED = 'vanished';

export interface ReplicateOptions {
  /** remove surplus copies of over-replicated files (only when asked) */
  trim?: boolean;
  /** override config.replicator.budgetSec / budgetBytes */
  budgetSec?: number;
  budgetBytes?: number;
  /** queue entries examined per query */
  pageSize?: number;
}

export interface ReplicateStats {
  /** another run holds this node's lock: nothing was done */
  locked: boolean;
  examined: number;
  copied: number;
  copiedBytes: number;
  /** copies placed over an older version */
  refreshed: number;
  dropped: number;
  deletesApplied: number;
  renamesApplied: number;
  failed: number;
  /** queue entries finished (file at target, nothing to clean) */
  finished: number;
  overReplicated: number;
  trimmed: number;
  /** items left for shortly later because a mount held one of their paths (watch runs again soon) */
  deferred: number;
  budgetHit: boolean;
  elapsedMs: number;
}

function emptyStats(): ReplicateStats {
  return {
    locked: false, examined: 0, copied: 0, copiedBytes: 0, refreshed: 0, dropped: 0, deletesApplied: 0, renamesApplied: 0,
    failed: 0, finished: 0, overReplicated: 0, trimmed: 0, deferred: 0, budgetHit: false, elapsedMs: 0,
  };
}

/** The advisory lock key of a node's replicator (replicate, scrub and watch share it). */
export function lockKey(nodeName: string): string {
  return `geogridfs:replicator:${nodeName}`;
}

/** Write this node's heartbeat from statfs of its local folder. */
export async function writeHeartbeat(ctx: ReplicatorContext): Promise<{ capacity: number; free: number }> {
  const s = await statfs(ctx.root);
  const capacity = s.blocks * s.bsize;
  const free = s.bavail * s.bsize;
  await heartbeat(ctx.store, ctx.node.name, capacity, free);
  return { capacity, free };
}

/** Remove empty folders from `dir` up to (not including) the node root. Best effort. */
async function pruneEmptyParents(root: string, dir: string): Promise<void> {
  let d = dir;
  while (d.startsWith(root + '/') && d !== root) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (or gone): stop
    }
    d = path.dirname(d);
  }
}

/**
 * tryLocked, retried for a few seconds while a mount holds a lock: for
 * clean-ups that should not be left for another run (bytes nothing else
 * would find again). Returns false when the locks stayed taken.
 */
async function lockedSoon(ctx: ReplicatorContext, paths: readonly string[], fn: (db: LockedDb) => Promise<void>): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await tryLocked(ctx, paths, fn)) return true;
    await new Promise((r) => setTimeout(r, 20 + 10 * attempt));
  }
  ctx.log.warn({ paths }, 'replicate: paths stayed locked; clean-up left for fsck --orphans');
  return false;
}

async function unlinkQuiet(p: string): Promise<void> {
  await unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * One replicate run. Returns { locked: true } at once when another run of
 * this node holds the lock.
 */
export async function replicate(ctx: ReplicatorContext, opts: ReplicateOptions = {}): Promise<ReplicateStats> {
  const stats = emptyStats();
  const started = Date.now();
  const release = await ctx.store.tryAdvisoryLock(lockKey(ctx.node.name));
  if (!release) {
    stats.locked = true;
    return stats;
  }
  try {
    await refreshNode(ctx);
    await checkNodeFolder(ctx);
    const space = await writeHeartbeat(ctx);
    await expireClaims(ctx.store);
    // we hold the node's lock: claims on copies to this node are a crashed run's
    await releaseNodeClaims(ctx.store, ctx.node.id);
    // and so are temp files of copies to this node (a killed run's)
    await removeStaleReplicaTemps(ctx.root);
    await applyNodeWork(ctx, stats);
    await processQueue(ctx, stats, opts, space.free, started);
    if (opts.trim ?? ctx.config.replicator.trimSurplus) await trimOverReplicated(ctx, stats);
    await writeHeartbeat(ctx);
  } finally {
    await release();
  }
  stats.elapsedMs = Date.now() - started;
  return stats;
}

/** Apply deletes and renames recorded for this node while it was away. */
export async function applyNodeWork(ctx: ReplicatorContext, stats: ReplicateStats): Promise<void> {
  const { store, node, log } = ctx;
  let after = 0;
  for (;;) {
    if (ctx.signal?.aborted) return;
    const items = await nodeWork(store, node.id, after, 200);
    if (!items.length) return;
    after = items[items.length - 1]!.fileId;
    for (const item of items) {
      try {
        // The item was read without locks: a mount may have moved the file or
        // its bytes on this node since. Under the locks of the paths as read,
        // it is read again; when it changed, its new paths are locked instead.
        let seen: NodeWorkItem | null = item;
        for (let attempt = 1; seen; attempt++) {
          if (seen.nodePath === null) {
            await finishNodeWork(store, node.id, { fileId: seen.fileId, newNodePath: null });
            break;
          }
          const asRead: NodeWorkItem = seen;
          // both paths locked: a mount changing either now goes first, and this item waits for the next run
          const done = await tryLocked(ctx, [asRead.nodePath, asRead.filePath], async (db) => {
            const now = await nodeWorkItem(db, node.id, asRead.fileId);
            if (now && (now.nodePath !== asRead.nodePath || now.filePath !== asRead.filePath || now.deleted !== asRead.deleted)) return now;
            if (now) await applyOne(ctx, db, now, stats);
            return null;
          });
          if (!done || (done.value && attempt === 3)) {
            stats.deferred++;
            log.debug({ fileId: item.fileId, path: asRead.nodePath }, done ? 'replicate: pending work keeps changing; next pass' : 'replicate: pending work on a path in use; next pass');
            break;
          }
          seen = done.value;
        }
      } catch (err) {
        stats.failed++;
        log.error({ fileId: item.fileId, path: item.nodePath, err: (err as Error).message }, 'replicate: pending delete/rename failed');
      }
    }
  }
}

/** One pending delete or rename, its paths locked (db: the locking connection). */
async function applyOne(ctx: ReplicatorContext, db: LockedDb, item: NodeWorkItem, stats: ReplicateStats): Promise<void> {
  const { node, root, log } = ctx;
  if (item.nodePath === null) return;
  if (item.deleted) {
    const local = onNode(root, item.nodePath);
    if (!(await pathTakenOnNode(db, node.id, item.nodePath, item.fileId)) && !(await adoptedByLiveFile(ctx, db, local, item))) {
      log.debug({ fileId: item.fileId, nodePath: item.nodePath }, 'replicate: pending delete applied');
      await unlinkQuiet(local);
      await pruneEmptyParents(root, path.dirname(local));
    }
    await finishNodeWork(db, node.id, { fileId: item.fileId, newNodePath: null });
    stats.deletesApplied++;
  } else if (item.nodePath !== item.filePath) {
    const from = onNode(root, item.nodePath);
    const to = onNode(root, item.filePath);
    // another live file's copy sits at the old path now (the path was reused): those bytes are not this file's
    const fromTaken = await pathTakenOnNode(db, node.id, item.nodePath, item.fileId);
    if (!fromTaken && (await exists(from))) {
      if ((await exists(to)) && (await pathTakenOnNode(db, node.id, item.filePath, item.fileId))) {
        await recordProblem(db, { kind: 'other', nodeId: node.id, fileId: item.fileId, path: item.filePath, detail: `pending rename from ${item.nodePath}: another file's replica occupies the new path on ${node.name}` });
        return;
      }
      // under the file's row lock: a mount registering a new version meanwhile has put its bytes at `to` itself
      log.debug({ fileId: item.fileId, from: item.nodePath, to: item.filePath }, 'replicate: pending rename');
      if (!(await moveReplicaLocked(db, node.id, item.fileId, item.nodePath, item.filePath, () => moveLocal(root, from, to)))) return;
      stats.renamesApplied++;
    } else if ((await bytesOfItem(to, item)) && !(await pathHeldOnNode(db, node.id, item.filePath, item.fileId))) {
      // what sits at the new path is taken for this file's bytes only when no other row names it and, for the current version, size and mtime agree
      log.debug({ fileId: item.fileId, from: item.nodePath, to: item.filePath, fromTaken }, 'replicate: pending rename found done already');
      await finishNodeWork(db, node.id, { fileId: item.fileId, newNodePath: item.filePath }); // moved already (folder rename)
      stats.renamesApplied++;
    } else {
      // a folder rename may have carried the bytes to a path that is neither
      const carried = await findCarriedCopy(ctx, db, item);
      if (carried) {
        log.debug({ fileId: item.fileId, from: item.nodePath, to: item.filePath, carried }, 'replicate: pending rename: bytes found where a folder rename carried them');
        const moved = await tryLocked(ctx, [carried], (db2) => moveReplicaLocked(db2, node.id, item.fileId, item.nodePath!, item.filePath, () => moveLocal(root, onNode(root, carried), to)));
        if (moved?.value) stats.renamesApplied++;
        return;
      }
      await dropReplica(db, item.fileId, node.id, 'missing', item.nodePath);
      await finishNodeWork(db, node.id, { fileId: item.fileId, newNodePath: null });
      if (!fromTaken) {
        await recordProblem(db, { kind: 'missing-replica', nodeId: node.id, fileId: item.fileId, path: item.filePath, detail: `pending rename: ${item.nodePath} is not on ${node.name}; replica dropped` });
      }
    }
  } else {
    await finishNodeWork(db, node.id, { fileId: item.fileId, newNodePath: item.filePath });
  }
}

/** Rename a file on this node, making the new parent folders and removing emptied old ones. */
async function moveLocal(root: string, from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  await rename(from, to);
  await pruneEmptyParents(root, path.dirname(from));
}

/**
 * The bytes at a deleted file's node path are another, live file's current
 * version (same path, size and checksum): not yet recorded on this node — a
 * mount replaying its journal after an outage registers them after the
 * replicators saw the path, or a walk registered them under another file id
 * meanwhile. They are recorded as that file's copy (and the file looked at
 * for its count) instead of being deleted under it.
 */
async function adoptedByLiveFile(ctx: ReplicatorContext, db: Queryable, local: string, item: NodeWorkItem): Promise<boolean> {
  if (item.nodePath === null) return false;
  const live = await getFile(db, item.nodePath);
  if (!live || live.id === item.fileId || live.kind !== 'file' || !live.checksum) return false;
  // a row of its own on this node (elsewhere: a pending rename) says where its bytes are
  if ((await replicasOf(db, live.id)).some((r) => r.nodeId === ctx.node.id)) return false;
  const st = await lstat(local).catch(() => null);
  if (!st?.isFile() || st.size !== live.size) return false;
  const h = await ctx.pool.hash(local).catch(() => null);
  if (h?.checksum !== live.checksum) return false;
  await recordReplica(db, live.id, ctx.node.id, live.version, item.nodePath);
  await enqueueNow(db, [live.id], 'adopted');
  ctx.log.info({ fileId: live.id, path: item.nodePath, deletedFileId: item.fileId }, "replicate: bytes a deleted file's row named are a live file's: recorded as its copy");
  return true;
}

/**
 * Wait until no process holds `paths` (or a folder above them) for a change:
 * a shared grid-wide lock taken and given back at once. Holding no lock of
 * its own meanwhile, the caller cannot deadlock; a wait that fails (database
 * trouble, statement time-out) is not an error here.
 */
async function changesSettled(ctx: ReplicatorContext, paths: string[]): Promise<void> {
  await ctx.store.withPathLocks(paths, { mode: 'wait', shared: true }, async () => undefined).catch(() => undefined);
}

/** A regular file at `local` that can be the item's bytes: of the current version, its size and mtime agree. */
async function bytesOfItem(local: string, item: NodeWorkItem): Promise<boolean> {
  const st = await lstat(local).catch(() => null);
  if (!st?.isFile()) return false;
  return !item.current || (st.size === item.size && Math.floor(st.mtimeMs) === Math.floor(item.mtimeUs / 1000));
}

/**
 * A pending rename whose bytes are at neither path: look where a folder
 * rename may have carried them (movedPathCandidates). A candidate counts only
 * when it is a regular file with the file's size and mtime (the replica is of
 * the current version), no replica row and no live file claim its path.
 * Returns the node path found, or null.
 */
async function findCarriedCopy(ctx: ReplicatorContext, db: Queryable, item: NodeWorkItem): Promise<string | null> {
  if (!item.current || item.nodePath === null) return null;
  for (const c of movedPathCandidates(item.nodePath, item.filePath)) {
    if (!(await bytesOfItem(onNode(ctx.root, c), item))) continue;
    if (await pathHeldOnNode(db, ctx.node.id, c, item.fileId)) continue;
    if (await getFile(db, c)) continue;
    return c;
  }
  return null;
}

async function processQueue(ctx: ReplicatorContext, stats: ReplicateStats, opts: ReplicateOptions, freeAtStart: number, started: number): Promise<void> {
  const { store, config, node, log } = ctx;
  const budgetMs = (opts.budgetSec ?? config.replicator.budgetSec) * 1000;
  const budgetBytes = opts.budgetBytes ?? config.replicator.budgetBytes;
  const freshSec = Math.max(300, 3 * config.replicator.budgetSec);
  const nodes: PlacementNode[] = await placementNodes(store, freshSec);
  const names = new Map(nodes.map((n) => [n.id, n]));
  const free = freeAtStart;
  let reserved = 0;
  const overBudget = () => Date.now() - started >= budgetMs || stats.copiedBytes + reserved >= budgetBytes;
  let cursor: QueueCursor | null = null;
  while (!ctx.signal?.aborted) {
    if (overBudget()) {
      stats.budgetHit = true;
      return;
    }
    const entries = await dueWork(store, cursor, opts.pageSize ?? 200);
    if (!entries.length) return;
    const last = entries[entries.length - 1]!;
    cursor = { notBefore: last.notBefore, fileId: last.fileId };
    const files = new Map((await workFiles(store, entries.map((e) => e.fileId))).map((f) => [f.id, f]));
    const reasons = new Map(entries.map((e) => [e.fileId, e.reason]));
    const finished: QueueEntry[] = [];
    const stuck: QueueEntry[] = [];
    const over: number[] = [];
    const notOver: number[] = [];
    const copies: WorkFile[] = [];
    const drops: { file: WorkFile; reason: DropReason }[] = [];
    for (const e of entries) {
      stats.examined++;
      const f = files.get(e.fileId);
      if (!f || f.deleted || f.kind !== 'file') {
        finished.push(e);
        continue;
      }
      const p = plan(f, nodes, node.id, { minFreeBytes: config.replicator.minFreeBytes, widen: e.waitedSec > config.replicator.claimTtlSec });
      (p.over ? over : notOver).push(f.id);
      if (p.copyHere) copies.push(f);
      else if (p.dropHere) drops.push({ file: f, reason: p.dropHere });
      else if (p.done) finished.push(e);
      // nobody can take it now: looked at again next run; after a while only every minute
      else if (p.stuck && e.waitedSec > STUCK_AFTER_SEC) stuck.push(e);
    }
    await removeQueued(store, finished);
    await deferQueued(store, stuck, 60);
    await markOverReplicated(store, over);
    await clearOverReplicated(store, notOver);
    stats.finished += finished.length;
    stats.overReplicated += over.length;

    for (const d of drops) {
      if (ctx.signal?.aborted) break;
      await dropLocal(ctx, d.file, d.reason, stats);
    }

    // copies: claimed in one transaction, at most replicator.concurrency at once, within the budgets,
    // recorded in batches (after one fsync per folder)
    const ttl = config.replicator.claimTtlSec;
    const claimed = await claimCopies(store, copies.map((f) => ({ fileId: f.id, version: f.version })), node.id, ctx.holder, ttl);
    const recorder = new CopyRecorder(ctx);
    const renew = setInterval(() => void renewClaims(store, [...claimed], node.id, ctx.holder, ttl).catch(() => undefined), (ttl * 1000) / 3);
    renew.unref();
    const running = new Set<Promise<void>>();
    try {
      for (const f of copies.filter((c) => claimed.has(c.id))) {
        if (ctx.signal?.aborted) break;
        if (overBudget()) {
          stats.budgetHit = true;
          break;
        }
        if (free - stats.copiedBytes - reserved - f.size < config.replicator.minFreeBytes) {
          log.warn({ path: f.path, free }, 'replicate: not enough free space on this node for more copies');
          break;
        }
        while (running.size >= config.replicator.concurrency) await Promise.race(running);
        reserved += f.size;
        const job = copyHere(ctx, f, names, stats, recorder, reasons.get(f.id) ?? '')
          .catch((err: Error) => {
            stats.failed++;
            log.error({ path: f.path, err: err.message }, 'replicate: copy failed');
          })
          .finally(() => {
            reserved -= f.size;
            running.delete(job);
          });
        running.add(job);
      }
      await Promise.all(running);
      await recorder.flush();
      // files this run brought to target need no further look: their entries go now (unless refreshed meanwhile)
      const byId = new Map(entries.map((e) => [e.fileId, e]));
      const nowDone = copies
        .filter((f) => recorder.recorded.has(f.id))
        .filter((f) => plan({ ...f, replicas: [...f.replicas.filter((r) => r.nodeId !== node.id), { nodeId: node.id, version: f.version }] }, nodes, node.id, { minFreeBytes: config.replicator.minFreeBytes }).done)
        .map((f) => byId.get(f.id)!);
      await removeQueued(store, nowDone);
      stats.finished += nowDone.length;
    } finally {
      clearInterval(renew);
      // claims not turned into replicas (failures, budget, stop) are given back
      await releaseClaims(store, [...claimed].filter((id) => !recorder.recorded.has(id)), node.id, ctx.holder).catch(() => undefined);
    }
  }
}

/** Where a copy of this run was put, to find and undo it if its file moved meanwhile. */
interface Placement {
  dev: number;
  ino: number;
  /** parent folders the copy had to create (removed again with it) */
  created: CreatedDir[];
}

interface PendingCopy {
  fileId: number;
  version: number;
  nodePath: string;
  dir: string;
  placed?: Placement;
}

/**
 * Verified copies waiting to be recorded: every 64 copies (or on flush) the
 * folders they were renamed into are fsynced once each, then all are
 * recorded in one transaction. A crash in between leaves verified files
 * without replica rows, which the next run recognises by checksum.
 *
 * A copy this run placed is recorded only if its file is still live at the
 * path it was copied to (recordCopies, strict). If the file was renamed or
 * deleted meanwhile, the copy is recorded where a rename carried it (the
 * file's new path), or else removed with the folders it created, and the
 * file is looked at again: a replica row never names a path its bytes are
 * not at, and no folder the user renamed or removed comes back.
 */
class CopyRecorder {
  private pending: PendingCopy[] = [];
  private chain: Promise<void> = Promise.resolve();
  readonly recorded = new Set<number>();
  constructor(private readonly ctx: ReplicatorContext) {}

  add(fileId: number, version: number, nodePath: string, dir: string, placed?: Placement): Promise<void> {
    this.pending.push({ fileId, version, nodePath, dir, ...(placed ? { placed } : {}) });
    return this.pending.length >= 64 ? this.flush() : Promise.resolve();
  }

  flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    // each batch is recorded (or abandoned) even when an earlier one failed
    const next = this.chain.then(async () => {
      if (!batch.length) return;
      for (const dir of new Set(batch.map((b) => b.dir))) {
        // a folder renamed through the mount meanwhile: the copy moved with it (seen when it is recorded)
        await fsyncDir(dir).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await this.record(batch);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async record(batch: PendingCopy[]): Promise<void> {
    const { store, node, holder } = this.ctx;
    let todo = batch;
    // a copy found at its file's new path is recorded there; bounded: a file renamed again and again is just looked at again later
    for (let round = 0; todo.length && round < 3; round++) {
      let mismatched: Awaited<ReturnType<typeof recordCopies>>;
      try {
        mismatched = await recordCopies(store, node.id, holder, todo.map((b) => ({ fileId: b.fileId, version: b.version, nodePath: b.nodePath, strict: b.placed !== undefined })));
      } catch (err) {
        // not recorded (the database went away): copies nobody knows would stay on this node for good
        if (isConnectionError(err)) await this.abandon(todo);
        throw err;
      }
      const missed = new Set(mismatched.map((m) => m.fileId));
      for (const b of todo) if (!missed.has(b.fileId)) this.recorded.add(b.fileId);
      const again: PendingCopy[] = [];
      for (const m of mismatched) {
        const b = todo.find((x) => x.fileId === m.fileId)!;
        const moved = await this.followMovedCopy(b, m.currentPath, m.deleted);
        if (moved) again.push(moved);
      }
      todo = again;
    }
    for (const b of todo) await this.discard(b, b.nodePath, null);
  }

  /**
   * The file of a placed copy was renamed or deleted before the copy was
   * recorded. Returns the copy to record at the file's new path when a rename
   * carried the bytes there; otherwise removes the bytes (found by identity at
   * the path placed or where a folder rename moved them) and the folders the
   * copy created, re-queues the file, and returns null.
   */
  private async followMovedCopy(b: PendingCopy, currentPath: string | null, deleted: boolean): Promise<PendingCopy | null> {
    const { root } = this.ctx;
    const placed = b.placed!;
    const ours = async (nodePath: string) => {
      const st = await lstat(onNode(root, nodePath)).catch(() => null);
      return st !== null && st.isFile() && st.dev === placed.dev && st.ino === placed.ino;
    };
    if (currentPath !== null && !deleted && (await ours(currentPath))) {
      return { ...b, nodePath: currentPath, dir: path.dirname(onNode(root, currentPath)) };
    }
    const candidates = [b.nodePath, ...(currentPath !== null ? movedPathCandidates(b.nodePath, currentPath) : [])];
    let at: string | null = null;
    for (const c of candidates) {
      if (await ours(c)) {
        at = c;
        break;
      }
    }
    await this.discard(b, at, currentPath);
    return null;
  }

  /**
   * Copies this run placed that could not be recorded (no database): removed
   * while each is still the file this run placed (dev/ino), with the folders
   * it made. No path lock can be had without the database; the identity
   * check keeps anything a mount put there meanwhile.
   */
  private async abandon(batch: PendingCopy[]): Promise<void> {
    const { root, log } = this.ctx;
    for (const b of batch) {
      const placed = b.placed;
      if (!placed) continue;
      const local = onNode(root, b.nodePath);
      const st = await lstat(local).catch(() => null);
      if (st && st.isFile() && st.dev === placed.dev && st.ino === placed.ino) await unlinkQuiet(local).catch(() => undefined);
      await removeCreatedDirs(placed.created).catch(() => undefined);
      log.debug({ fileId: b.fileId, path: b.nodePath }, 'replicate: copy not recorded (database unreachable): removed');
    }
  }

  private async discard(b: PendingCopy, at: string | null, currentPath: string | null): Promise<void> {
    const { store, root, log } = this.ctx;
    const placed = b.placed!;
    if (at !== null) {
      const where = at;
      await lockedSoon(this.ctx, [where], async () => {
        // still the copy this run placed (a mount may have put other bytes there meanwhile)
        const st = await lstat(onNode(root, where)).catch(() => null);
        if (st && st.isFile() && st.dev === placed.dev && st.ino === placed.ino) await unlinkQuiet(onNode(root, where));
      });
    }
    if (b.placed) await removeCreatedDirs(b.placed.created);
    log.debug({ fileId: b.fileId, path: b.nodePath, now: currentPath, removedAt: at }, 'replicate: the file moved or went during the copy; copy removed, looked at again');
    await enqueue(store, [b.fileId], 'changed', 0);
  }
}

/**
 * Where bytes that sat at `oldPath` may be now if folder renames carried
 * them while their file moved from `oldPath` to `newPath`: the old trailing
 * names under the new leading folders (e.g. /d/x with the file now at /e/y:
 * /e/x). Cheap guesses, each checked by the caller.
 */
export function movedPathCandidates(oldPath: string, newPath: string): string[] {
  const o = oldPath.split('/').filter(Boolean);
  const n = newPath.split('/').filter(Boolean);
  const out: string[] = [];
  for (let k = 1; k <= o.length && k <= n.length; k++) {
    const c = '/' + [...n.slice(0, n.length - k), ...o.slice(o.length - k)].join('/');
    if (c !== oldPath && c !== newPath && !out.includes(c)) out.push(c);
  }
  return out;
}

/** Copy one claimed file to this node: pick sources, verified atomic copy, hand it to the recorder. */
/**
 * True when the file or its replicas (node, version, node path) are no
 * longer as this run read them. A failed copy is put off for a while only
 * when nothing changed: when metadata lagged the nodes (a journal replayed
 * after an outage, a pending rename applied) the change that fixes it may
 * already have come and gone while the copy was failing.
 */
async function changedSince(store: ReplicatorContext['store'], f: WorkFile): Promise<boolean> {
  const now = (await workFiles(store, [f.id]))[0];
  if (!now || now.deleted || now.version !== f.version || now.path !== f.path) return true;
  const key = (r: { nodeId: number; version: number; path: string }) => `${r.nodeId}:${r.version}:${r.path}`;
  const before = new Set(f.replicas.map(key));
  return now.replicas.length !== f.replicas.length || now.replicas.some((r) => !before.has(key(r)));
}

async function copyHere(ctx: ReplicatorContext, f: WorkFile, nodes: Map<number, PlacementNode>, stats: ReplicateStats, recorder: CopyRecorder, previousReason: string): Promise<void> {
  const { config, node, root, log } = ctx;
  // a failure puts the file off only while it is still as read (else: looked at again at once)
  const store = ctx.store;
  const enqueue = async (db: Queryable, ids: number[], reason: string, delaySec: number): Promise<void> => {
    if (delaySec > 0 && reason !== 'changed' && (await changedSince(store, f))) return enqueueNow(db, ids, 'changed', 0);
    return enqueueNow(db, ids, reason, delaySec);
  };
  const dest = onNode(root, f.path);
  const mine = f.replicas.find((r) => r.nodeId === node.id);
  if (!mine && (await exists(dest))) {
    // bytes this node has but metadata does not know as its replica (e.g. a run killed after
    // its rename): never overwrite them blindly
    const h = await ctx.pool.hash(dest).catch(() => null);
    if (h && h.size === f.size && h.checksum === f.checksum) {
      await recorder.add(f.id, f.version, f.path, path.dirname(dest));
      stats.copied++;
      return;
    }
    if (await pathHeldOnNode(store, node.id, f.path, f.id)) {
      // another file's copy, still to be moved or deleted from this path (node_work): look again shortly
      await enqueue(store, [f.id], 'path-busy', 10);
      return;
    }
    await recordProblem(store, {
      kind: 'checksum-mismatch', nodeId: node.id, fileId: f.id, path: f.path,
      detail: `replicate: ${node.name} has different bytes at this path that are not a replica; not overwritten (move them away or run walk)`,
    });
    await enqueue(store, [f.id], 'blocked', 3600);
    return;
  }
  const sources = rank(
    `${f.id}:source`,
    f.replicas
      .filter((r) => r.version === f.version && r.nodeId !== node.id)
      .map((r) => ({ r, n: nodes.get(r.nodeId) }))
      .filter((x) => x.n && x.n.state !== 'dead' && config.nodes[x.n.name])
      .map((x) => ({ name: x.n!.name, nodeId: x.r.nodeId, path: x.r.path })),
  );
  if (!sources.length) {
    await recordProblem(store, { kind: 'missing-source', nodeId: node.id, fileId: f.id, path: f.path, detail: `no reachable current replica to copy from (config.nodes lists ${Object.keys(config.nodes).join(', ')})` });
    await enqueue(store, [f.id], 'no-source', 300);
    return;
  }
  const errors: string[] = [];
  let beingWritten = false;
  let vanished = false;
  for (const src of sources) {
    const sourcePath = onNode(config.nodes[src.name]!, src.path);
    try {
      const copied = await copyToTemp(ctx.pool, {
        source: sourcePath,
        root,
        dest,
        checksum: f.checksum!,
        size: f.size,
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
        mtimeUs: f.mtimeUs,
        atimeUs: f.atimeUs,
        bytesPerSec: config.replicator.copyBytesPerSec,
      });
      const got = copied.got;
      await ctx.hooks?.afterTempCopy?.({ id: f.id, path: f.path });
      // placed holding the path's lock (no mount changes it meanwhile) and the file's row lock, only while
      // the file is still this version at this path
      const outcome = await tryLocked(ctx, [f.path], async (db) => {
        // renamed or deleted while the bytes streamed: nothing is placed (no folder is made for a path the file left)
        const before = await getFileById(db, f.id);
        if (!before || before.deletedAt || before.path !== f.path) return 'changed' as const;
        // another file's copy is still to be moved or deleted from this path (node_work): not overwritten
        if (await pathHeldOnNode(db, node.id, f.path, f.id)) return 'path-busy' as const;
        const placed = await underFileLock(db, f.id, async (cur) =>
          cur && !cur.deleted && cur.path === f.path && cur.version === f.version ? { created: await placeTemp(root, copied.temp, dest) } : null,
        );
        return placed ?? ('changed' as const);
      });
      const result = outcome?.value ?? ('path-locked' as const);
      if (typeof result === 'string') {
        await unlinkQuiet(copied.temp);
        if (result === 'path-locked') stats.deferred++;
        await enqueue(store, [f.id], result, result === 'changed' ? 0 : result === 'path-busy' ? 10 : 1);
        return;
      }
      const created = result.created;
      log.debug({ fileId: f.id, path: f.path, version: f.version, refresh: !!mine }, 'replicate: copy placed');
      await ctx.hooks?.afterPlace?.({ id: f.id, path: f.path });
      stats.copied++;
      stats.copiedBytes += got.size;
      if (mine) stats.refreshed++;
      await recorder.add(f.id, f.version, f.path, path.dirname(dest), { dev: copied.dev, ino: copied.ino, created });
      if (mine && mine.path !== f.path) {
        // the stale copy sat at an older path: remove it once the new one is recorded
        await recorder.flush();
        const old = mine.path;
        if (recorder.recorded.has(f.id)) {
          await lockedSoon(ctx, [old], async (db) => {
            if (!(await pathTakenOnNode(db, node.id, old, f.id))) await unlinkQuiet(onNode(root, old));
          });
        }
      }
      if (errors.length) await resolveProblems(store, 'copy-failed', f.path, node.id);
      return;
    } catch (err) {
      errors.push(`${src.name}: ${(err as Error).message}`);
      if (!(err instanceof SourceMismatchError)) {
        // a mount may be between moving the bytes (a rename of the file or a folder above it) and its
        // metadata commit: wait for its path locks (shared: only a change in progress is waited for), then look
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') await changesSettled(ctx, [f.path, src.path]);
        // renamed or deleted meanwhile (a folder rename carries the source or the temp file away): not a fault, look again now
        const current = await getFileById(store, f.id);
        if (!current || current.deletedAt || current.path !== f.path) {
          await enqueue(store, [f.id], 'changed', 0);
          return;
        }
        // the source's own replica row moved or went meanwhile (its node applied a pending rename or
        // dropped the copy): the bytes are elsewhere now, not lost — look again now
        const row = (await replicasOf(store, f.id)).find((r) => r.nodeId === src.nodeId);
        if (!row || row.path !== src.path || row.version !== f.version) {
          await enqueue(store, [f.id], 'changed', 0);
          return;
        }
        // a path that vanished while metadata still shows it: the mount may be between moving the bytes and
        // committing the rename. Look again shortly; only a second time in a row is it a failure.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && previousReason !== VANISHED) {
          vanished = true;
          continue;
        }
      }
      if (err instanceof SourceMismatchError) {
        const current = await getFileById(store, f.id);
        if (!current || current.deletedAt || current.version !== f.version) {
          // the file changed (or went) since this run read it: not a fault, look again now
          await enqueue(store, [f.id], 'changed', 0);
          return;
        }
        const st = await lstat(sourcePath).catch(() => null);
        if (st && Date.now() - st.mtimeMs < RECENT_WRITE_MS) {
          beingWritten = true; // a writer (the mount) has not committed its version yet
          continue;
        }
        const srcNode = [...nodes.values()].find((n) => n.name === src.name);
        await recordProblem(store, { kind: 'corrupt-replica', nodeId: srcNode?.id ?? null, fileId: f.id, path: f.path, detail: `replicate on ${node.name}: ${err.message}` });
      }
      log.warn({ path: f.path, source: src.name, err: (err as Error).message }, 'replicate: source failed, trying the next');
    }
  }
  if (vanished && errors.length === sources.length) {
    await enqueue(store, [f.id], VANISHED, 5);
    return;
  }
  if (beingWritten && errors.length === sources.length) {
    log.debug({ path: f.path }, 'replicate: the file is being written; trying again shortly');
    await enqueue(store, [f.id], 'being-written', 10);
    return;
  }
  stats.failed++;
  await recordProblem(store, { kind: 'copy-failed', nodeId: node.id, fileId: f.id, path: f.path, detail: errors.join('; ') });
  await enqueue(store, [f.id], 'copy-failed', 30); // a source that fails for good is looked at twice a minute (the problem stays open meanwhile)
}

/** Remove this node's copy of a file when the others suffice (drain, stale, trim). */
async function dropLocal(ctx: ReplicatorContext, f: WorkFile, reason: DropReason, stats: ReplicateStats): Promise<boolean> {
  const { node, root, log } = ctx;
  const mine = f.replicas.find((r) => r.nodeId === node.id);
  if (!mine) return false;
  try {
    const r = await tryLocked(ctx, [mine.path, f.path], async (db) => {
      const nodePath = await dropReplica(db, f.id, node.id, reason, mine.path);
      if (nodePath === null) return false;
      if (!(await pathTakenOnNode(db, node.id, nodePath, f.id))) {
        log.debug({ fileId: f.id, nodePath, reason }, 'replicate: copy dropped');
        const local = onNode(root, nodePath);
        await unlinkQuiet(local);
        await pruneEmptyParents(root, path.dirname(local));
      }
      return true;
    });
    if (!r) stats.deferred++;
    if (!r?.value) return false; // refused, or the path is in use now: looked at again later
    stats.dropped++;
    return true;
  } catch (err) {
    stats.failed++;
    log.error({ path: f.path, reason, err: (err as Error).message }, 'replicate: removing a copy failed');
    return false;
  }
}

/** `--trim`: over-replicated files lose their surplus copies (lowest rendezvous weight first, never below target). */
async function trimOverReplicated(ctx: ReplicatorContext, stats: ReplicateStats): Promise<void> {
  const { store, config, node } = ctx;
  const nodes = await placementNodes(store, Math.max(300, 3 * config.replicator.budgetSec));
  let after = 0;
  for (;;) {
    if (ctx.signal?.aborted) return;
    const ids = await overReplicated(store, after, 200);
    if (!ids.length) return;
    after = ids[ids.length - 1]!;
    const files = await workFiles(store, ids);
    const clear: number[] = [];
    for (const f of files) {
      const p = plan(f, nodes, node.id, { minFreeBytes: config.replicator.minFreeBytes, trim: true });
      if (p.dropHere === 'trim' && (await dropLocal(ctx, f, 'trim', stats))) {
        stats.trimmed++;
        if (p.kept - 1 <= f.replicaTarget) clear.push(f.id);
      } else if (!p.over || f.deleted) clear.push(f.id);
    }
    const gone = ids.filter((id) => !files.some((f) => f.id === id));
    await clearOverReplicated(store, [...clear, ...gone]);
  }
}

export function formatReplicateSummary(s: ReplicateStats): string {
  if (s.locked) return 'replicate: another run holds the lock; nothing done';
  return (
    `replicate: ${s.copied} copied (${(s.copiedBytes / 2 ** 20).toFixed(1)} MiB, ${s.refreshed} refreshed), ${s.dropped} removed, ` +
    `${s.deletesApplied} deletes and ${s.renamesApplied} renames applied, ${s.finished} finished, ${s.failed} failed, ` +
    `${s.overReplicated} over-replicated${s.trimmed ? ` (${s.trimmed} trimmed)` : ''}; ${s.examined} examined in ${(s.elapsedMs / 1000).toFixed(1)}s` +
    (s.deferred ? `; ${s.deferred} deferred (path in use)` : '') +
    (s.budgetHit ? ' (budget reached)' : '')
  );
}
