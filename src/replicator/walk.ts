/**
 * `replicator walk`: bring metadata in line with the files on this node's
 * folder.
 *
 * - The tree is streamed (opendir, depth-first, one open handle per level)
 *   and files are looked up in metadata in batches, so memory stays bounded
 *   whatever the tree size.
 * - A file whose size and mtime match metadata and of which this node already
 *   holds the current replica is skipped without reading it: a re-run on an
 *   unchanged tree costs one lstat per file and one query per batch. The same
 *   makes an interrupted walk resumable: what was recorded is not hashed
 *   again (mismatches are remembered in walk_hashes for the same reason).
 * - Other files are hashed off the JS thread, `replicator.concurrency` at a
 *   time, then: unknown -> registered (class and targets from config.classes,
 *   this node as replica); same size and checksum -> this node added to its
 *   replicas; different -> a problem is recorded and neither side is touched.
 * - Results are written in batches of one transaction each.
 */
import { lstat, opendir } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import PQueue from 'p-queue';
import path from 'node:path';
import { checkNodeFolder, type ReplicatorContext } from './context.js';
import { commitFileVersion, ensureFolder, getFolder } from '../meta/files.js';
import { attachMatching, cacheWalkHashes, forgetWalkHashes, localPathInfo, registerNewFiles, type LocalPathInfo } from '../meta/replicas.js';
import { recordProblem } from '../meta/problems.js';
import { isReservedName } from '../storage/copy.js';
import type { HashResult } from '../storage/hash.js';
import { makeClassifier } from '../util/classify.js';
import { joinVirtual, normalizeVirtualPath, onNode, parentOf } from '../util/vpath.js';
import type { LockedDb, Queryable } from '../meta/store.js';
import { tryLocked } from './locks.js';
import { GeoError } from '../util/errors.js';

export interface WalkStats {
  /** regular files seen */
  files: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  /** skipped: already recorded with the same size and mtime */
  unchanged: number;
  registered: number;
  replicasAdded: number;
  mismatches: number;
  folders: number;
  /** symlinks, sockets, ...: not registered by walk */
  skipped: number;
  errors: number;
  elapsedMs: number;
  /** totals from the counting pass (when asked for), for the ETA */
  totalFiles: number | null;
  totalBytes: number | null;
  interrupted: boolean;
}

export interface WalkOptions {
  /** a subtree of the node folder (virtual path, e.g. /photos/2024) */
  subpath?: string;
  /** also count the tree first (in parallel) so progress can show an ETA */
  count?: boolean;
  onProgress?: (s: WalkStats) => void;
  /** files looked up per query (default 256) */
  batchSize?: number;
}

/** mtimes are compared to the millisecond: copies set them through utimes (double seconds), NFS may round. */
const MTIME_SLACK_US = 1000;

/** A stat's time in whole microseconds (the metadata's unit). */
export function statUs(ns: bigint): number {
  return Number(ns / 1000n);
}

/** A differing local file this recently modified, of which this node holds the current version, is taken as being written. */
const RECENT_WRITE_MS = 60_000;

/** Files up to this size are hashed in groups of SMALL_GROUP per worker message. */
const SMALL_FILE = 256 * 1024;
const SMALL_GROUP = 32;

interface Job {
  e: { vpath: string; abs: string; st: BigIntStats };
  info: LocalPathInfo | undefined;
  size: number;
  mtimeUs: number;
}

interface Hashed {
  vpath: string;
  /** the file hashed: its inode (a file put at the path since is another one) */
  ino: bigint;
  info: LocalPathInfo | undefined;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  atimeUs: number;
  checksum: string;
}

export async function walk(ctx: ReplicatorContext, opts: WalkOptions = {}): Promise<WalkStats> {
  const started = Date.now();
  const stats: WalkStats = {
    files: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, unchanged: 0, registered: 0, replicasAdded: 0, mismatches: 0,
    folders: 0, skipped: 0, errors: 0, elapsedMs: 0, totalFiles: null, totalBytes: null, interrupted: false,
  };
  const { store, node, log, pool } = ctx;
  const classify = makeClassifier(ctx.config.classes);
  const batchSize = opts.batchSize ?? 256;
  const startV = normalizeVirtualPath(opts.subpath ?? '/');
  const startAbs = onNode(ctx.root, startV);
  const stopped = () => ctx.signal?.aborted === true;

  // ---- writes: results accumulate and are flushed in one transaction per batch
  let pending: Hashed[] = [];
  let lastFlush = Date.now();
  // two batches written at once (the database round trips, not the CPU, bound a walk of small files)
  const writers = new PQueue({ concurrency: 2 });
  const flush = (): Promise<void> => {
    const batch = pending;
    pending = [];
    lastFlush = Date.now();
    if (!batch.length) return writers.onIdle();
    return writers.add(() => writeBatch(batch));
  };
  const writeBatch = async (batch: Hashed[]): Promise<void> => {
    try {
      const t0 = Date.now();
      // under the paths' locks (a mount changing one of them right now goes first), and only for files still
      // as they were hashed, with metadata as it is now: never racing a mount's rename, create or delete
      const whole = await tryLocked(ctx, batch.map((h) => h.vpath), (db) => writeFresh(db, batch), { exclusive: true });
      if (!whole) {
        // some path is in use: one by one, leaving out (for the next walk or watch event) those still in use
        for (const h of batch) {
          if (!(await tryLocked(ctx, [h.vpath], (db) => writeFresh(db, [h]), { exclusive: true }))) stats.skipped++;
        }
      }
      log.debug({ files: batch.length, ms: Date.now() - t0 }, 'walk: batch written');
    } catch (err) {
      stats.errors += batch.length;
      log.error({ err: (err as Error).message, files: batch.length }, 'walk: writing a batch failed');
    }
  };
  const writeFresh = async (db: LockedDb, batch: Hashed[]): Promise<void> => {
    const now = await Promise.all(batch.map((h) => lstat(onNode(ctx.root, h.vpath), { bigint: true }).catch(() => null)));
    const still = batch.filter((h, i) => {
      const st = now[i];
      return st !== null && st.isFile() && st.ino === h.ino && Number(st.size) === h.size && statUs(st.mtimeNs) === h.mtimeUs;
    });
    stats.skipped += batch.length - still.length; // changed or gone since hashed: its new state comes again
    if (!still.length) return;
    const infos = await localPathInfo(db, node.id, still.map((h) => h.vpath));
    const fresh = still.map((h) => ({ ...h, info: infos.get(h.vpath) }));
    await db.txn((tx) => writeResults(tx, fresh));
  };
  const writeResults = async (tx: Queryable, batch: Hashed[]): Promise<void> => {
    let registered = 0;
    let added = 0;
    let mismatches = 0;
    const known = batch.filter((h) => h.info?.fileId);
    const attached = await attachMatching(tx, node.id, known.map((h) => ({ fileId: h.info!.fileId!, path: h.vpath, size: h.size, checksum: h.checksum })));
    added += attached.size;
    const bad: Hashed[] = known.filter((h) => !attached.has(h.info!.fileId!));
    const okPaths: string[] = [];
    const otherTime: Hashed[] = [];
    for (const h of known.filter((x) => attached.has(x.info!.fileId!))) {
      if (Math.abs((h.info!.mtimeUs ?? 0) - h.mtimeUs) < MTIME_SLACK_US) okPaths.push(h.vpath);
      else otherTime.push(h);
    }
    // unknown files: one bulk insert; a path taken meanwhile is compared one by one
    const unknown = batch.filter((x) => !x.info?.fileId);
    const folderIds = new Map<string, number>();
    for (const dir of new Set(unknown.map((h) => parentOf(h.vpath)))) folderIds.set(dir, (await ensureFolder(tx, dir)).id);
    const created = await registerNewFiles(
      tx,
      node.id,
      unknown.map((h) => {
        const c = classify(h.vpath);
        return {
          path: h.vpath, folderId: folderIds.get(parentOf(h.vpath))!, size: h.size, checksum: h.checksum, mode: h.mode, uid: h.uid, gid: h.gid,
          atimeUs: h.atimeUs, mtimeUs: h.mtimeUs, class: c.class, replicaTarget: c.replicaTarget, backupTarget: c.backupTarget,
        };
      }),
    );
    registered += created.size;
    okPaths.push(...created);
    for (const h of unknown.filter((x) => !created.has(x.vpath))) {
      await tx.query('SAVEPOINT walk_file');
      try {
        const r = await commitFileVersion(tx, {
          path: h.vpath, size: h.size, checksum: h.checksum, mode: h.mode, uid: h.uid, gid: h.gid,
          mtimeUs: h.mtimeUs, atimeUs: h.atimeUs, classification: classify(h.vpath), nodeId: node.id, onlyIfNew: true,
        });
        if (r.created) {
          registered++;
          okPaths.push(h.vpath);
        } else if (r.file.kind === 'file' && r.file.size === h.size && r.file.checksum === h.checksum) {
          // registered meanwhile (by the mount or another node's walk): same bytes
          await attachMatching(tx, node.id, [{ fileId: r.file.id, path: h.vpath, size: h.size, checksum: h.checksum }]);
          added++;
          okPaths.push(h.vpath);
        } else {
          bad.push({ ...h, info: { ...(h.info as LocalPathInfo), fileId: r.file.id, size: r.file.size, checksum: r.file.checksum } });
        }
        await tx.query('RELEASE SAVEPOINT walk_file');
      } catch (err) {
        await tx.query('ROLLBACK TO SAVEPOINT walk_file');
        stats.errors++;
        log.error({ path: h.vpath, err: (err as Error).message }, 'walk: cannot register file');
      }
    }
    for (const h of bad) {
      if (h.info?.replicaVersion !== null && h.info?.replicaVersion === h.info?.version && Date.now() - h.mtimeUs / 1000 < RECENT_WRITE_MS) {
        // this node holds the current version and the file was just modified: a writer
        // (the mount) has not committed its new version yet; not a mismatch
        continue;
      }
      mismatches++;
      const sizeDiffers = h.info?.size !== h.size;
      await recordProblem(tx, {
        kind: sizeDiffers ? 'size-mismatch' : 'checksum-mismatch',
        nodeId: node.id,
        fileId: h.info?.fileId ?? null,
        path: h.vpath,
        detail: `walk: local file on ${node.name} differs from metadata (local ${h.size} bytes sha256 ${h.checksum}, metadata ${h.info?.size ?? '?'} bytes sha256 ${h.info?.checksum ?? '?'}); neither side changed`,
      });
    }
    await cacheWalkHashes(tx, node.id, [...bad, ...otherTime].map((h) => ({ path: h.vpath, size: h.size, mtimeUs: h.mtimeUs, checksum: h.checksum })));
    await forgetWalkHashes(tx, node.id, okPaths);
    okPaths.push(...otherTime.map((h) => h.vpath));
    if (okPaths.length) {
      await tx.query(
        `UPDATE problems SET resolved_at = now() WHERE resolved_at IS NULL AND node_id = $1 AND kind IN ('checksum-mismatch', 'size-mismatch') AND path = ANY($2::text[])`,
        [node.id, okPaths],
      );
    }
    // counted only once the transaction body ran (a retry recounts from scratch)
    stats.registered += registered;
    stats.replicasAdded += added;
    stats.mismatches += mismatches;
  };

  // ---- per batch of names of one folder: lstat, look up, skip or hash
  const processBatch = async (vdir: string, absDir: string, names: string[]): Promise<void> => {
    const entries = (
      await Promise.all(
        names.map(async (name) => {
          const abs = path.join(absDir, name);
          try {
            const st = await lstat(abs, { bigint: true });
            return st.isFile() ? { vpath: joinVirtual(vdir, name), abs, st } : null;
          } catch {
            return null; // vanished since readdir
          }
        }),
      )
    ).filter((e) => e !== null);
    if (!entries.length) return;
    const infos = await localPathInfo(store, node.id, entries.map((e) => e.vpath));
    const toHash: Job[] = [];
    for (const e of entries) {
      if (stopped()) return;
      const size = Number(e.st.size);
      const mtimeUs = statUs(e.st.mtimeNs);
      const info = infos.get(e.vpath);
      stats.files++;
      stats.bytes += size;
      if (info?.otherReplica) {
        stats.skipped++; // bytes of a deleted or renamed file: replicate applies that
        continue;
      }
      if (info?.fileId && info.replicaVersion !== null && info.version !== null && info.replicaVersion < info.version && info.replicaPath === e.vpath) {
        stats.skipped++; // a known older version: replicate overwrites it
        continue;
      }
      if (info?.fileId && info.kind !== 'file') {
        stats.mismatches++;
        await recordProblem(store, { kind: 'other', nodeId: node.id, fileId: info.fileId, path: e.vpath, detail: `walk: a regular file on ${node.name} where metadata has a ${info.kind}` });
        continue;
      }
      const sameTime = Math.abs((info?.mtimeUs ?? 0) - mtimeUs) < MTIME_SLACK_US;
      // a copy placed by hand has its own mtime: then walk_hashes remembers what was verified
      const verifiedBefore = info?.cachedChecksum === info?.checksum && info?.cachedSize === size && info?.cachedMtimeUs === mtimeUs;
      if (info?.fileId && info.replicaVersion === info.version && info.replicaPath === e.vpath && info.size === size && (sameTime || verifiedBefore)) {
        stats.unchanged++;
        continue;
      }
      if (info?.cachedChecksum && info.cachedSize === size && info.cachedMtimeUs === mtimeUs && info.fileId && (info.size !== size || info.checksum !== info.cachedChecksum)) {
        stats.unchanged++; // a known mismatch, already reported
        stats.mismatches++;
        continue;
      }
      toHash.push({ e, info, size, mtimeUs });
    }
    // small files go to a worker in groups (one message each), large ones alone
    const small = toHash.filter((x) => x.size <= SMALL_FILE);
    const large = toHash.filter((x) => x.size > SMALL_FILE);
    const groups: Job[][] = [];
    for (let i = 0; i < small.length; i += SMALL_GROUP) groups.push(small.slice(i, i + SMALL_GROUP));
    for (const group of [...groups, ...large.map((j) => [j])]) {
      await pool.whenBelow(ctx.config.replicator.concurrency * 2);
      if (writers.size > 2) await writers.onSizeLessThan(2); // the database is behind: do not pile results up
      if (stopped()) return;
      const work: Promise<(HashResult | { error: string; code?: string })[]> =
        group.length === 1 && group[0]!.size > SMALL_FILE
          ? pool.hash(group[0]!.e.abs).then(
              (h) => [h],
              (err: NodeJS.ErrnoException) => [{ error: err.message, ...(err.code ? { code: err.code } : {}) }],
            )
          : pool.hashMany(group.map((j) => j.e.abs));
      void work.then((results) => results.forEach((h, i) => onHashed(group[i]!, h)));
    }
  };

  const onHashed = (j: Job, h: HashResult | { error: string; code?: string }): void => {
    const { e, info, size, mtimeUs } = j;
    if ('error' in h) {
      if (h.code === 'ENOENT') return;
      stats.errors++;
      log.error({ path: e.vpath, err: h.error }, 'walk: cannot read file');
      return;
    }
    stats.hashedFiles++;
    stats.hashedBytes += h.size;
    if (h.size !== size || h.mtimeUs !== mtimeUs) {
      stats.errors++;
      log.warn({ path: e.vpath }, 'walk: file changed while it was hashed; skipped (walk again later)');
      return;
    }
    pending.push({
      vpath: e.vpath, ino: e.st.ino, info, size, checksum: h.checksum, mode: Number(e.st.mode) & 0o7777, uid: Number(e.st.uid), gid: Number(e.st.gid),
      mtimeUs, atimeUs: statUs(e.st.atimeNs),
    });
    if (pending.length >= batchSize || Date.now() - lastFlush > 1000) void flush();
  };

  const ensureDir = async (vdir: string, abs: string): Promise<boolean> => {
    if (vdir === '/') return true;
    if (await getFolder(store, vdir)) return true;
    try {
      // under the folder's lock: a folder a mount is renaming right now (its new name on the nodes before
      // its metadata commit) is not registered here; its subtree is looked at again later
      const made = await tryLocked(ctx, [vdir], async (db) => {
        const st = await lstat(abs, { bigint: true }).catch(() => null);
        if (!st || !st.isDirectory()) return false;
        await db.txn((tx) => ensureFolder(tx, vdir, { mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtimeUs: statUs(st.mtimeNs) }));
        return true;
      }, { exclusive: true });
      if (!made?.value) {
        stats.skipped++;
        return false;
      }
      stats.folders++;
      return true;
    } catch (err) {
      stats.errors++;
      log.error({ path: vdir, err: (err as Error).message }, 'walk: cannot register folder; its subtree is skipped');
      return false;
    }
  };

  const visit = async (vdir: string, absDir: string): Promise<void> => {
    if (stopped()) return;
    if (!(await ensureDir(vdir, absDir))) return;
    let dir;
    try {
      dir = await opendir(absDir, { bufferSize: 256 });
    } catch (err) {
      stats.errors++;
      log.error({ path: vdir, err: (err as Error).message }, 'walk: cannot read folder');
      return;
    }
    let names: string[] = [];
    for await (const ent of dir) {
      if (stopped()) break;
      if (isReservedName(ent.name)) continue;
      if (ent.isDirectory()) {
        await visit(joinVirtual(vdir, ent.name), path.join(absDir, ent.name));
      } else if (ent.isFile()) {
        names.push(ent.name);
        if (names.length >= batchSize) {
          await processBatch(vdir, absDir, names);
          names = [];
        }
      } else {
        stats.skipped++;
      }
    }
    if (names.length && !stopped()) await processBatch(vdir, absDir, names);
  };

  await checkNodeFolder(ctx);
  const counter = opts.count ? countTree(startAbs, stats, stopped) : Promise.resolve();
  const ticker = opts.onProgress
    ? setInterval(() => {
        stats.elapsedMs = Date.now() - started;
        opts.onProgress!(stats);
      }, 500)
    : null;
  try {
    const st = await lstat(startAbs).catch((err: NodeJS.ErrnoException) => {
      throw new GeoError(err.code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `${startV} is not on node ${node.name} (${startAbs}): ${err.code ?? err.message}`);
    });
    if (st.isDirectory()) await visit(startV, startAbs);
    else if (st.isFile()) await processBatch(path.posix.dirname(startV), path.dirname(startAbs), [path.basename(startAbs)]);
    await pool.whenBelow(1);
    // wait for the hashes in flight
    while (pool.load > 0) await new Promise((r) => setTimeout(r, 20));
    await flush();
    await writers.onIdle();
    await counter;
  } finally {
    if (ticker) clearInterval(ticker);
  }
  stats.interrupted = stopped();
  stats.elapsedMs = Date.now() - started;
  return stats;
}

/** Count files and bytes of a tree (the ETA's denominator); cheap: readdir + lstat only. */
async function countTree(root: string, stats: WalkStats, stopped: () => boolean): Promise<void> {
  let files = 0;
  let bytes = 0;
  const visit = async (dir: string): Promise<void> => {
    let d;
    try {
      d = await opendir(dir, { bufferSize: 256 });
    } catch {
      return;
    }
    for await (const ent of d) {
      if (stopped()) break;
      if (isReservedName(ent.name)) continue;
      const abs = path.join(dir, ent.name);
      if (ent.isDirectory()) await visit(abs);
      else if (ent.isFile()) {
        files++;
        bytes += (await lstat(abs).catch(() => ({ size: 0 }))).size;
      }
    }
  };
  const st = await lstat(root).catch(() => null);
  if (st?.isDirectory()) await visit(root);
  else if (st?.isFile()) {
    files = 1;
    bytes = st.size;
  }
  if (!stopped()) {
    stats.totalFiles = files;
    stats.totalBytes = bytes;
  }
}

/** One progress line: files, bytes, rate, ETA. */
export function formatWalkProgress(s: WalkStats): string {
  const sec = Math.max(0.001, s.elapsedMs / 1000);
  const mb = s.hashedBytes / 2 ** 20;
  let eta = '';
  if (s.totalFiles !== null && s.totalBytes !== null) {
    const leftBytes = Math.max(0, s.totalBytes - s.bytes);
    const leftFiles = Math.max(0, s.totalFiles - s.files);
    const byteRate = s.bytes / sec;
    const fileRate = s.files / sec;
    const etaSec = Math.max(byteRate > 0 ? leftBytes / byteRate : 0, fileRate > 0 ? leftFiles / fileRate : 0);
    eta = `, ${Math.round((100 * s.files) / Math.max(1, s.totalFiles))}%, ETA ${formatDuration(etaSec)}`;
  } else {
    eta = ', counting…';
  }
  return `walk: ${s.files} files (${(s.bytes / 2 ** 20).toFixed(1)} MiB), hashed ${s.hashedFiles} (${mb.toFixed(1)} MiB, ${(mb / sec).toFixed(1)} MiB/s, ${Math.round(s.files / sec)} files/s)${eta}`;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  if (sec < 60) return `${Math.round(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, '0')}s`;
  return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatWalkSummary(s: WalkStats): string {
  const sec = Math.max(0.001, s.elapsedMs / 1000);
  return (
    `walk${s.interrupted ? ' (interrupted)' : ''}: ${s.files} files, ${s.registered} registered, ${s.replicasAdded} replicas added, ` +
    `${s.unchanged} unchanged, ${s.mismatches} mismatches, ${s.folders} folders added, ${s.skipped} skipped, ${s.errors} errors; ` +
    `hashed ${s.hashedFiles} files (${(s.hashedBytes / 2 ** 20).toFixed(1)} MiB) in ${sec.toFixed(1)}s ` +
    `(${Math.round(s.files / sec)} files/s, ${(s.hashedBytes / 2 ** 20 / sec).toFixed(1)} MiB/s)`
  );
}
