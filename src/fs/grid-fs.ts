/**
 * The filesystem rules of the mount: POSIX semantics over several node
 * folders and the metadata store. No FUSE here (see fuse-adapter.ts): every
 * method is async, returns a value or throws (FsError or an error with an
 * errno `code`), and gets normalised virtual paths.
 *
 * - Metadata first: lookups go to the cache, then PostgreSQL; the node
 *   folders are the fall-back for entries metadata does not know yet (files
 *   placed by hand), so nothing on a node is invisible.
 * - Writes: a new file goes to the first node of the placement policy that
 *   accepts it; its sha256 is computed as data streams through (recomputed
 *   from the node when writes were not sequential); when the written file is
 *   closed (flush) the version is registered in one statement
 *   (commitVersionFast; commitFileVersion in a transaction when new folders
 *   are needed).
 * - Namespace changes are applied to every reachable node, then to metadata
 *   in one transaction naming the nodes handled; the others get pending work.
 * - When PostgreSQL is unreachable, lookups use the nodes only and metadata
 *   changes go to the journal, replayed in order when the database is back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Stats } from 'node:fs';
import type { Config } from '../config/schema.js';
import { PathLockUnavailable, type LockedDb, type Queryable } from '../meta/store.js';
import type { MetaAccess } from './meta-access.js';

/** Where a change's metadata statements go: the store, or the connection holding its path locks. */
type MetaDb = Pick<MetaAccess, 'query' | 'txn'> | LockedDb;
import { isConnectionError } from '../meta/store.js';
import { commitFileVersion, listFolder, lookup, lookupWithReplicas, recordReplica, replicasOf, META_CHANNEL, type ReplicaRow, type FileRow, type FolderRow, type MetaChange, nowUs, announce } from '../meta/files.js';
import {
  commitVersionFast, folderHasChildren, knownReplicaPaths, makeFolder, makeFolderFast, nodesHoldingOthersAt, makeSymlink, removeFolder, removeFolderFast, renamePath, renamePathFast,
  setAttributes, setAttributesFast, unlinkFile, unlinkFileFast,
} from '../meta/fs-ops.js';
import { listNodes } from '../meta/nodes.js';
import { recordProblem } from '../meta/problems.js';
import { NodeIo, OPEN, type StorageNode } from '../storage/node-io.js';
import { isReservedName } from '../storage/copy.js';
import { makeClassifier, type Classifier } from '../util/classify.js';
import type { Logger } from '../util/log.js';
import { joinVirtual, parentOf } from '../util/vpath.js';
import { MetaCache, type CacheMirror, type Known } from './cache.js';
import { FsError } from './errors.js';
import { HandleTable, type ReadHandle, type WriteHandle } from './handles.js';
import { Journal, type JournalRecord, type Stamped } from './journal.js';
import { IntentLog, isChange, type ChangeIntent, type Intent } from './intents.js';
import { enqueue, pathHeldOnNode, pathTakenOnNode } from '../meta/queue.js';
import { PLACEMENT, READ, type PlacementCandidate, type ReadCandidate } from './policies/index.js';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const HASH_CHUNK = 1 << 20;
/** where writers keep their bytes until close, on every node (a reserved name: never part of the tree) */
export const WRITE_TMP_DIR = '/.ggfs-tmp';

/** Attributes of one entry as the kernel gets them (times in ms since the epoch). */
export interface Attr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  atime: number;
  mtime: number;
  ctime: number;
  blocks: number;
  blksize: number;
  /** stable inode number (mounted with use_ino): renames keep it, as tar and find expect */
  ino: number;
}

/**
 * Where getattr answers that may be served without asking this object
 * again go (the binding's attribute cache, answered on libfuse's thread):
 * only entries served from the metadata cache with no writer open, and the
 * metadata cache's mirror drops them whenever it drops or replaces theirs.
 */
export interface AttrSink extends CacheMirror {
  put(vpath: string, attr: Attr): void;
  stats?(): { hits: number; misses: number; entries: number };
}

export interface StatfsResult {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/** Where an entry was found. */
type Resolved =
  | { src: 'meta'; known: NonNullable<Known> }
  | { src: 'node'; stat: Stats; nodes: StorageNode[] };

/** Errors on one node after which another node is tried. */
const TRY_NEXT_NODE = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'ETIMEDOUT', 'EHOSTDOWN', 'EIO', 'ENOTCONN', 'ESTALE']);

function codeOf(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

function usToMs(us: number): number {
  return Math.floor(us / 1000);
}

/**
 * A record as the journal keeps it. An unlink or rename made without the
 * database ran without the grid-wide locks, so a node that had nothing at
 * the path then may have got a copy since (a replicator acting on metadata
 * that did not know of the change yet): when the record is replayed, only
 * the nodes it really changed count as handled; any other node's replica
 * stays pending work (node_work) for its replicator, instead of a copy the
 * metadata no longer names (which the reconcile after the replay would
 * register again: a deleted file back, db-restart-writes seed 21, 2 mounts).
 * Live (under the locks), a node without the file is handled as it is.
 */
function journaled(rec: JournalRecord): JournalRecord {
  if ((rec.op !== 'unlink' && rec.op !== 'rename') || !rec.absent) return rec;
  const { absent, ...rest } = rec;
  const keep = rest.nodes.map((n) => !absent.includes(n));
  return { ...rest, nodes: rest.nodes.filter((_, i) => keep[i]), ...(rest.paths ? { paths: rest.paths.filter((_, i) => keep[i]) } : {}) };
}

function attrOf(r: Resolved, vpath: string): Attr {
  if (r.src === 'node') {
    const s = r.stat;
    return { mode: s.mode, uid: s.uid, gid: s.gid, size: s.isDirectory() ? 4096 : s.size, nlink: 1, atime: s.atimeMs, mtime: s.mtimeMs, ctime: s.ctimeMs, blocks: s.blocks, blksize: 4096, ino: vpath === '/' ? 2 : inoOfPath(vpath) };
  }
  if (r.known.type === 'folder') {
    const f = r.known.folder;
    return { mode: S_IFDIR | f.mode, uid: f.uid, gid: f.gid, size: 4096, nlink: 1, atime: usToMs(f.mtimeUs), mtime: usToMs(f.mtimeUs), ctime: usToMs(f.ctimeUs), blocks: 8, blksize: 4096, ino: inoOfPath(f.path) };
  }
  const f = r.known.file;
  const type = f.kind === 'symlink' ? S_IFLNK : S_IFREG;
  return {
    mode: type | (f.kind === 'symlink' ? 0o777 : f.mode),
    uid: f.uid,
    gid: f.gid,
    size: f.size,
    nlink: 1,
    atime: usToMs(f.atimeUs),
    mtime: usToMs(f.mtimeUs),
    ctime: usToMs(f.ctimeUs),
    blocks: Math.ceil(f.size / 4096) * 8,
    blksize: 4096,
    ino: inoOfPath(f.path),
  };
}

/**
 * Inode numbers (fuse-native passes 32 bits): a hash of the path with the
 * top bit set, for files and folders alike — the same whether the entry is
 * served from metadata or from the node folders, and from create to close
 * (tar compares them: a folder it made must keep its inode until it sets
 * its times, its delayed symlinks likewise). A rename changes them.
 */
export function inoOfPath(vpath: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < vpath.length; i++) h = Math.imul(h ^ vpath.charCodeAt(i), 0x01000193);
  return (0x80000000 | (h >>> 0)) >>> 0;
}

/** Bytes a writer may have in flight to its node (write-behind). */
const WRITE_BEHIND_BYTES = 4 * 2 ** 20;

function isFull(err: unknown): boolean {
  const c = codeOf(err);
  return c === 'ENOSPC' || c === 'EDQUOT';
}

/** EIO for a replica whose bytes are not the version metadata names (their size differs). */
function wrongSize(node: string, nodePath: string, got: number, want: number): FsError {
  return Object.assign(new FsError('EIO', `${node}:${nodePath} has ${got} bytes, metadata says ${want}`), { wrongSize: true });
}

function isWrongSize(err: unknown): boolean {
  return (err as { wrongSize?: boolean } | null)?.wrongSize === true;
}

/** The size metadata gives a file (undefined for node-only entries and folders). */
function sizeOf(r: Resolved): number | undefined {
  return r.src === 'meta' && r.known.type === 'file' && r.known.file.kind === 'file' ? r.known.file.size : undefined;
}

function isDir(r: Resolved): boolean {
  return r.src === 'meta' ? r.known.type === 'folder' : r.stat.isDirectory();
}

export interface GridFsOptions {
  config: Config;
  store: MetaAccess;
  log: Logger;
  journalFile: string;
  /** identity of this mount in NOTIFY payloads */
  origin: string;
}

export class GridFs {
  readonly io: NodeIo;
  readonly cache: MetaCache;
  readonly handles = new HandleTable();
  readonly journal: Journal;
  readonly intents: IntentLog;
  private readonly tmpPrefix: string;
  private tmpSeq = 0;
  /** configured nodes, refreshed from the nodes table */
  nodes: StorageNode[] = [];
  private readonly config: Config;
  private readonly store: MetaAccess;
  private readonly log: Logger;
  private readonly classify: Classifier;
  private readonly origin: string;
  private degraded = false;
  /**
   * file paths the replayed journal records touched (reconciled with the
   * nodes afterwards), with the last version the journal wrote there (node
   * and checksum; followed through renames), or null
   */
  private readonly touched = new Map<string, { node: string; checksum: string } | null>();
  /** folder paths the replayed journal made, removed or renamed (reconciled with the nodes afterwards) */
  private readonly touchedDirs = new Set<string>();
  private replaying = false;
  private timers: NodeJS.Timeout[] = [];
  private listenClose: (() => Promise<void>) | null = null;
  /** node folders known to exist ("node\0path"), to skip repeated mkdir -p */
  private readonly nodeDirs = new Set<string>();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;

  constructor(opts: GridFsOptions) {
    this.config = opts.config;
    this.store = opts.store;
    this.log = opts.log;
    this.origin = opts.origin;
    this.io = new NodeIo(opts.config.storage, opts.log);
    this.cache = new MetaCache(opts.config.mount.cacheEntries, 30_000, opts.config.mount.negativeCacheSec * 1000);
    this.classify = makeClassifier(opts.config.classes);
    this.journal = new Journal(opts.journalFile);
    this.intents = new IntentLog(opts.journalFile.replace(/\.jsonl$/, '') + '.intents');
    // temp names of this mount: unique per host and mountpoint, so that a restart finds its own leftovers
    this.tmpPrefix = 'w-' + createHash('sha256').update(`${hostname()}\0${opts.journalFile}`).digest('hex').slice(0, 12) + '-';
  }

  // ---------------------------------------------------------------- life cycle

  /** Load nodes, start LISTEN, replay a journal left by a previous run. */
  async start(): Promise<void> {
    await this.refreshNodes();
    if (this.nodes.length === 0) throw new FsError('EINVAL', 'no storage nodes: add them to config.ts `nodes` and register them (geogridfs node add NAME)');
    const pending = await this.journal.load();
    if (pending > 0) {
      this.log.warn({ pending, file: this.journal.file }, 'metadata journal from a previous run: replaying');
      this.degraded = true;
      await this.tryRecover();
    }
    await this.startListening();
    const left = await this.intents.load();
    if (left.length) this.log.warn({ intents: left.length, file: this.intents.file }, 'writes and changes a previous run left unfinished: finishing them');
    await this.resolveIntents(true).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'finishing the previous run\'s writes failed; retried'));
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => void fn().catch((err: unknown) => this.log.debug({ err }, 'background task failed')), ms);
      t.unref();
      this.timers.push(t);
    };
    every(10_000, () => this.refreshNodes());
    every(1_000, async () => {
      if (this.degraded) await this.tryRecover();
      if (this.intents.unowned > 0) await this.resolveIntents(false);
    });
  }

  /** LISTEN for other mounts' changes; retried by tryRecover when the database was not there. */
  private async startListening(): Promise<void> {
    if (this.listenClose) return;
    try {
      const h = await this.store.listen(META_CHANNEL, (payload) => this.onNotify(payload), {
        onReconnect: () => {
          this.cache.clear();
          this.clearReplicas();
          void this.tryRecover();
        },
        onDisconnect: () => {
          this.cache.clear();
          this.clearReplicas();
        },
      });
      this.listenClose = () => h.close();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'LISTEN failed; retried when the database is back');
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const h of this.handles.all()) {
      if (h.kind === 'write' && h.dirty && !h.unlinked) await this.commit(h).catch((err: unknown) => this.log.error({ err, path: h.path }, 'commit at stop failed'));
    }
    await this.intents.close();
    await this.listenClose?.().catch(() => undefined);
  }

  /** Nodes from config joined with their rows (id, state). Unregistered ones are skipped. */
  async refreshNodes(): Promise<void> {
    let rows;
    try {
      rows = await listNodes(this.store);
    } catch (err) {
      if (isConnectionError(err) && this.nodes.length) return;
      if (isConnectionError(err)) {
        // no database at start: serve the configured nodes as active until it is back
        this.nodes = Object.entries(this.config.nodes).map(([name, root]) => ({ id: 0, name, root, state: 'active' as const }));
        this.degraded = true;
        return;
      }
      throw err;
    }
    const byName = new Map(rows.map((r) => [r.name, r]));
    const out: StorageNode[] = [];
    for (const [name, root] of Object.entries(this.config.nodes)) {
      const row = byName.get(name);
      if (!row) {
        this.log.warn({ node: name }, 'node in config.ts but not registered (geogridfs node add): ignored');
        continue;
      }
      out.push({ id: row.id, name, root, state: row.state });
    }
    this.nodes = out;
  }

  private onNotify(payload: string): void {
    let change: MetaChange;
    try {
      change = JSON.parse(payload) as MetaChange;
    } catch {
      this.cache.clear();
      this.clearReplicas();
      return;
    }
    // our own commits: the cache already has what they wrote (commit() invalidates the path before it and
    // sets the new row after, so a lookup racing with it is never cached); their echo would only throw it away
    if (change.origin === this.origin) return;
    for (const p of change.paths ?? []) {
      this.forgetReplicas(p);
      this.cache.invalidate(p);
    }
    for (const s of change.subtrees ?? []) {
      this.clearReplicas();
      this.cache.invalidateSubtree(s);
    }
  }

  /** Replica lists by file id, checked against the file's version; dropped on NOTIFY of the path and on our own changes. */
  private readonly replicaCache = new Map<number, { version: number; path: string; at: number; rows: ReplicaRow[] }>();

  private clearReplicas(): void {
    this.replicaGen++;
    this.replicaCache.clear();
  }

  /** bumped by every invalidation: a lookup that raced with one is not cached */
  private replicaGen = 0;

  private forgetReplicas(vpath: string): void {
    this.replicaGen++;
    const k = this.cache.peek(vpath);
    if (k && k.type === 'file') this.replicaCache.delete(k.file.id);
  }

  private forgetReplicasOf(r: Resolved | null): void {
    this.replicaGen++;
    if (r?.src === 'meta' && r.known.type === 'file') this.replicaCache.delete(r.known.file.id);
  }

  /** Replicas of a file (cached 30 s for its current version). */
  private async replicas(file: FileRow): Promise<ReplicaRow[]> {
    const hit = this.replicaCache.get(file.id);
    // only for the version and path they were read for (a rename moves the replicas' node paths too)
    if (hit && hit.version === file.version && hit.path === file.path && Date.now() - hit.at < 30_000) return hit.rows;
    const gen = this.replicaGen;
    const rows = await replicasOf(this.store, file.id);
    if (gen === this.replicaGen) {
      if (this.replicaCache.size > 50_000) this.clearReplicas();
      this.replicaCache.set(file.id, { version: file.version, path: file.path, at: Date.now(), rows });
    }
    return rows;
  }

  // ---------------------------------------------------------------- publishing writes

  /** Rename a writer's temp over its path on the node. */
  private publish(node: StorageNode, tmp: string, target: string): Promise<void> {
    return this.moveOnNode(node, tmp, target);
  }

  /**
   * rename(2) on a node, making `to`'s folders there first — again when
   * they went away although this mount made them (another mount's rmdir, a
   * replicator pruning folders it emptied). ENOENT means `from` is not on
   * the node (callers count such a node as having nothing to move); a
   * missing destination folder that cannot be made is an error, never
   * ENOENT: taken for "nothing here", it made metadata say the bytes moved
   * while they stayed at the old path.
   */
  private async moveOnNode(node: StorageNode, from: string, to: string): Promise<void> {
    await this.ensureNodeDir(node, parentOf(to));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.io.rename(node, from, to);
        return;
      } catch (err) {
        if (codeOf(err) !== 'ENOENT' || !(await this.io.lstatOrNull(node, from))) throw err;
        if (attempt === 3) throw new FsError('EIO', `rename ${from} -> ${to} on ${node.name}: the destination folder keeps going away`);
        this.forgetNodeDirs(parentOf(to));
        await this.ensureNodeDir(node, parentOf(to));
      }
    }
  }

  /** A fresh temp path (node-relative) for a writer's bytes. */
  private newTmpPath(): string {
    return `${WRITE_TMP_DIR}/${this.tmpPrefix}${Date.now().toString(36)}-${(this.tmpSeq++).toString(36)}-${randomBytes(4).toString('hex')}`;
  }

  /**
   * Finish publish intents left by a previous run or by a rename that
   * failed: the temp is renamed over the path when metadata has that version
   * (the commit happened), removed when it does not. With `sweep`, this
   * mount's temps that no intent and no open writer names are removed too:
   * writes a crash cut short before close, never acknowledged.
   */
  private async resolveIntents(sweep: boolean): Promise<void> {
    for (const i of [...this.intents.pending.values()]) {
      if (this.intents.isOwned(i.id)) continue;
      if (isChange(i)) {
        if (this.degraded) continue; // metadata decides: later
        try {
          await this.finishChange(i);
          await this.intents.done(i.id);
        } catch (err) {
          if (isConnectionError(err)) {
            this.enterDegraded(err);
            this.log.warn({ path: i.path, op: i.kind, err: (err as Error).message }, 'interrupted change not finished yet; retried');
          } else {
            // metadata refuses it (the same error the change itself met): retrying cannot help
            this.log.error({ path: i.path, to: i.to, op: i.kind, code: codeOf(err), err: (err as Error).message }, 'interrupted change could not be finished: see geogridfs fsck');
            await this.intents.done(i.id);
          }
        }
        continue;
      }
      const node = this.nodes.find((n) => n.name === i.node);
      try {
        if (!node) {
          this.log.warn({ intent: i }, 'write intent names a node no longer configured: dropped');
          await this.intents.done(i.id);
          continue;
        }
        if (!this.io.usable(node)) continue;
        const st = await this.io.lstatOrNull(node, i.tmp);
        if (!st) {
          await this.intents.done(i.id);
          continue;
        }
        let committed: boolean;
        if (this.degraded) {
          const recs = await this.journal.readAll();
          committed = recs.some((r) => r.op === 'commit' && r.path === i.path && r.checksum === i.checksum && r.node === i.node);
          if (!committed) continue; // only the database can tell: later
        } else {
          const e = await lookup(this.store, i.path);
          committed = e?.type === 'file' && e.file.checksum === i.checksum && e.file.size === i.size;
        }
        if (committed) {
          await this.locked([i.path], () => this.publish(node, i.tmp, i.path));
          this.log.info({ path: i.path, node: node.name }, 'write finished after an interruption: bytes put in place');
        } else {
          await this.io.unlink(node, i.tmp).catch(() => undefined);
          this.log.info({ path: i.path, node: node.name }, 'write interrupted before it was registered: temp removed');
        }
        await this.intents.done(i.id);
      } catch (err) {
        if (isConnectionError(err)) this.enterDegraded(err);
        this.log.warn({ path: i.path, err: (err as Error).message }, 'write intent not finished yet; retried');
      }
    }
    if (!sweep) return;
    const keep = new Set<string>();
    for (const i of this.intents.pending.values()) if (!isChange(i)) keep.add(`${i.node}\0${i.tmp}`);
    for (const h of this.handles.all()) if (h.kind === 'write' && h.tmp) keep.add(`${h.node.name}\0${h.tmp}`);
    await Promise.all(
      this.usableNodes().map(async (node) => {
        const names = await this.io.readdir(node, WRITE_TMP_DIR).catch(() => []);
        for (const d of names) {
          const tmp = `${WRITE_TMP_DIR}/${d.name}`;
          if (!d.name.startsWith(this.tmpPrefix) || keep.has(`${node.name}\0${tmp}`)) continue;
          await this.io.unlink(node, tmp).catch(() => undefined);
          this.log.info({ node: node.name, tmp }, 'unfinished write of a previous run removed (never acknowledged)');
        }
      }),
    );
  }

  /**
   * The nodes where a replica row of a file other than the rename's source
   * and replaced destination names `to`: a rename or delete that node has
   * not applied yet, its bytes still at `to`. Renaming onto them would
   * destroy them — the only copy, when that file had no other. (Files only:
   * a folder's rename onto a non-empty node folder fails by itself.)
   */
  private async occupiedAt(db: MetaDb, to: string, except: (number | null)[]): Promise<Set<string>> {
    if (!this.metaUp) return new Set();
    const ids = this.nodes.filter((n) => n.id > 0).map((n) => n.id);
    try {
      const held = await nodesHoldingOthersAt(db, ids, to, except.filter((x): x is number => x !== null));
      return new Set(this.nodes.filter((n) => held.has(n.id)).map((n) => n.name));
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      this.enterDegraded(err);
      return new Set();
    }
  }

  /** unlink's step on one node: its replica's node path (`paths`, default the path) and anything at the path itself. */
  private async unlinkOnNode(node: StorageNode, vpath: string, paths: ReadonlyMap<string, string>): Promise<void> {
    const p = paths.get(node.name) ?? vpath;
    await this.io.unlink(node, p);
    if (p !== vpath) await this.io.unlink(node, vpath).catch(() => undefined);
  }

  /**
   * rename's step on one node: the source (at its replica's node path) moves
   * to `to`, replacing the destination's copy; a node without the source
   * loses the destination's copy (a file replaced) or its empty folder.
   * `finishing` (a change a killed run was applying): a node that held the
   * source and has it no more was renamed already — its `to` is the renamed
   * entry and stays.
   */
  private async renameOnNode(
    node: StorageNode,
    s: {
      from: string;
      to: string;
      srcPaths: ReadonlyMap<string, string>;
      dstPaths: ReadonlyMap<string, string>;
      srcIsDir: boolean;
      dstExists: boolean;
      finishing: boolean;
      /** nodes where another file's copy still sits at `to` (see occupiedAt) */
      occupied: ReadonlySet<string>;
    },
  ): Promise<void> {
    const srcPath = s.srcPaths.get(node.name) ?? s.from;
    const dstPath = s.dstPaths.get(node.name);
    if (await this.io.lstatOrNull(node, srcPath)) {
      // not handled: this node's rename stays pending until its replicator has moved or deleted those bytes
      if (s.occupied.has(node.name)) throw new FsError('EBUSY', `${s.to} on ${node.name} still holds another file's copy (a rename or delete its replicator has yet to apply)`);
      await this.moveOnNode(node, srcPath, s.to);
      if (dstPath !== undefined && dstPath !== s.to) await this.io.unlink(node, dstPath).catch(() => undefined);
    } else if (s.finishing) {
      // never held the source: the replaced destination's copy goes, as the rename would have done
      if (!s.srcIsDir && !s.srcPaths.has(node.name) && dstPath !== undefined) await this.io.unlink(node, dstPath);
    } else if (s.dstExists) {
      if (s.srcIsDir) await this.io.rmdir(node, s.to).catch(() => undefined);
      else await this.io.unlink(node, dstPath ?? s.to);
    }
  }

  /**
   * Finish an unlink or rename that a previous run (or a failed call) was
   * applying to the nodes when it stopped, before its metadata record: the
   * application had no answer, so either outcome is allowed, and the one
   * that agrees with the nodes is "done". Only while metadata still shows
   * the entry as the change found it (same file id and version, same folder
   * id); a newer change of the path (another mount) wins and nothing is
   * touched. A node that held the file and no longer has it at its path has
   * already been changed.
   */
  private async finishChange(i: ChangeIntent): Promise<void> {
    if (i.fileId === null && i.folderId === null) return; // metadata never knew it: the nodes are the truth already
    const paths = [i.path, ...(i.to ? [i.to] : []), ...Object.values(i.paths), ...Object.values(i.dstPaths ?? {})];
    await this.locked(paths, async (db) => {
      const meta = await lookup(db, i.path);
      const same =
        i.fileId !== null
          ? meta?.type === 'file' && meta.file.id === i.fileId && meta.file.version === i.version
          : meta?.type === 'folder' && meta.folder.id === i.folderId;
      if (!same) return;
      if (i.kind === 'unlink') {
        const { handled } = await this.onEveryNode(`unlink ${i.path}`, (node) => this.unlinkOnNode(node, i.path, new Map(Object.entries(i.paths))));
        await this.mutate({ op: 'unlink', path: i.path, nodes: handled, paths: handled.map((n) => i.paths[n] ?? i.path) }, db);
      } else {
        const to = i.to!;
        const dir = i.folderId !== null;
        const dstPaths = new Map(Object.entries(i.dstPaths ?? {}));
        const dstMeta = dir ? null : await lookup(db, to);
        const occupied = dir ? new Set<string>() : await this.occupiedAt(db, to, [i.fileId, dstMeta?.type === 'file' ? dstMeta.file.id : null]);
        const step = { from: i.path, to, srcPaths: new Map(Object.entries(i.paths)), dstPaths, srcIsDir: dir, dstExists: dstPaths.size > 0, finishing: true, occupied };
        const { handled } = await this.onEveryNode(`rename ${i.path}`, (node) => this.renameOnNode(node, step));
        this.forgetNodeDirs(i.path);
        this.forgetNodeDirs(to);
        await this.mutate({ op: 'rename', from: i.path, to, nodes: handled, paths: dir ? undefined : handled.map((n) => i.paths[n] ?? i.path) }, db);
        this.cache.invalidateSubtree(to);
      }
      this.log.info({ op: i.kind, path: i.path, to: i.to }, 'a change a previous run was applying to the nodes: finished');
    });
    this.clearReplicas();
    this.cache.invalidateSubtree(i.path);
  }

  // ---------------------------------------------------------------- metadata access

  /** True when lookups may use PostgreSQL. */
  get metaUp(): boolean {
    return !this.degraded;
  }

  private enterDegraded(err: unknown): void {
    if (!this.degraded) this.log.warn({ err: (err as Error).message }, 'PostgreSQL unreachable: serving from the nodes, journaling metadata changes');
    this.degraded = true;
    this.cache.clear();
    this.clearReplicas();
  }

  /** Probe the database; when it answers, replay the journal and leave degraded mode. */
  async tryRecover(): Promise<void> {
    if (this.replaying) return;
    this.replaying = true;
    try {
      await this.store.query('SELECT 1');
      if (this.nodes.some((n) => n.id === 0)) await this.refreshNodes();
      await this.startListening();
      const empty = await this.journal.replay((rec) => this.replayOne(rec));
      if (empty && this.touched.size) {
        // renamed folders: their files are reconciled under the new path by the folder's own record
        await this.reconcile(new Map(this.touched));
        this.touched.clear();
      }
      if (empty && this.touchedDirs.size) {
        await this.reconcileFolders([...this.touchedDirs]);
        this.touchedDirs.clear();
      }
      if (empty) {
        if (this.degraded) this.log.info('PostgreSQL is back: journal replayed');
        this.degraded = false;
        this.cache.clear();
        if (this.intents.unowned > 0) await this.resolveIntents(false);
      }
    } catch (err) {
      if (!isConnectionError(err)) this.log.warn({ err }, 'journal replay stopped');
    } finally {
      this.replaying = false;
    }
  }

  /**
   * After a journal replay: make metadata agree with the node folders for
   * every file path the journal touched. Each record was applied to the
   * nodes when it was made, but another mount's journal may have changed the
   * same paths in between, journals are replayed independently, and the
   * replicators and watchers acted on metadata that lagged meanwhile; the
   * nodes hold the truth. Where nodes disagree, the newest bytes (mtime: the
   * last write; a replicator's copy keeps its version's mtime) are the
   * file's current version, on every node that holds the same bytes. A live
   * file without bytes on any node is deleted (only when every node
   * answered). Each path under its lock: no replicator acts on it meanwhile.
   */
  private async reconcile(paths: Map<string, { node: string; checksum: string } | null>): Promise<void> {
    for (const [vpath, last] of paths) {
      try {
        await this.locked([vpath], (db) => this.reconcileOne(db, vpath, last));
      } catch (err) {
        if (isConnectionError(err)) throw err;
        this.log.warn({ path: vpath, err: (err as Error).message }, 'reconcile after replay failed for this path');
      }
    }
  }

  private async reconcileOne(db: MetaDb, vpath: string, last: { node: string; checksum: string } | null): Promise<void> {
    const meta = await lookup(db, vpath);
    if (meta?.type === 'folder') return;
    if (meta?.type === 'file' && meta.file.kind === 'symlink') return;
    if (isReservedName(vpath.slice(vpath.lastIndexOf('/') + 1))) return;
    const nodes = this.usableNodes();
    const stats = await Promise.all(nodes.map((n) => this.io.lstatOrNull(n, vpath).catch(() => null)));
    const ownId = meta?.type === 'file' ? meta.file.id : -1;
    const candidates = nodes.flatMap((node, i) => (stats[i]?.isFile() ? [{ node, st: stats[i]! }] : []));
    // with no live file here: bytes another file's replica row names (a delete or rename still to be applied there
    // by node_work) are that file's, not a new one to register. With a live file the bytes are compared with it as
    // they are (excluding some would make "no bytes anywhere" out of a file that has them)
    const held = meta ? candidates.map(() => false) : await Promise.all(candidates.map((h) => pathHeldOnNode(db, h.node.id, vpath, ownId)));
    const holders = candidates.filter((_, i) => !held[i]);
    if (holders.length === 0) {
      const allAnswered = this.nodes.every((n) => n.state === 'dead' || this.io.usable(n));
      if (meta && allAnswered) await db.txn((tx) => unlinkFile(tx, vpath, this.nodes.map((n) => n.id)));
      return;
    }
    // newest first (ties: configuration order, as the node fall-back reads)
    holders.sort((a, b) => Math.floor(b.st.mtimeMs) - Math.floor(a.st.mtimeMs));
    const sums = new Map<string, { checksum: string; size: number }>();
    for (const h of holders) sums.set(h.node.name, await this.hashOnNode(h.node, vpath));
    // the journal's last write to this path wins while its node still has those bytes; else the newest bytes
    const best = holders.find((h) => last && h.node.name === last.node && sums.get(h.node.name)!.checksum === last.checksum) ?? holders[0]!;
    const want = sums.get(best.node.name)!;
    const same = holders.filter((h) => sums.get(h.node.name)!.checksum === want.checksum);
    const other = holders.filter((h) => sums.get(h.node.name)!.checksum !== want.checksum);
    if (meta?.type === 'file') {
      const reps = await replicasOf(db, meta.file.id);
      const current = new Map(reps.filter((r) => r.version === meta.file.version).map((r) => [r.nodeName, r]));
      const rows = new Map(reps.map((r) => [r.nodeName, r]));
      // bytes that are not this version must be known as an older one (a replicator then refreshes or drops them)
      const unaccounted = other.some((h) => !rows.has(h.node.name) || current.has(h.node.name));
      if (meta.file.checksum === want.checksum && meta.file.size === want.size && !unaccounted) {
        // metadata agrees: every node with these bytes counts (and a replicator looks at the count: copies
        // replicated while the journal waited may now be more than the class wants)
        const added = same.filter((h) => current.get(h.node.name)?.path !== vpath);
        for (const h of added) await recordReplica(db, meta.file.id, h.node.id, meta.file.version, vpath);
        if (added.length) await enqueue(db, [meta.file.id], 'reconciled');
        return;
      }
    }
    const st = best.st;
    await db.txn(async (tx) => {
      const version = {
        path: vpath,
        size: want.size,
        checksum: want.checksum,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtimeUs: Math.round(st.mtimeMs * 1000),
        atimeUs: Math.round(st.atimeMs * 1000),
        classification: this.classify(vpath),
        nodeId: best.node.id,
      };
      let r = await commitFileVersion(tx, version);
      // a new file: one version more, so that the other bytes can be the older one
      if (other.length && r.file.version === 1) r = await commitFileVersion(tx, version);
      for (const h of same) if (h !== best) await recordReplica(tx, r.file.id, h.node.id, r.file.version, vpath);
      // other bytes at the path: an older version of this file from now on (refreshed or dropped by the replicators)
      if (r.file.version > 1) for (const h of other) await recordReplica(tx, r.file.id, h.node.id, r.file.version - 1, vpath);
      await announce(tx, { origin: this.origin, paths: [vpath] });
    });
    // its announcement is our own (not applied by onNotify)
    this.forgetReplicas(vpath);
    this.cache.invalidate(vpath);
    this.log.info({ path: vpath, node: best.node.name, copies: same.length }, 'after the journal replay: metadata set to the newest bytes on the nodes');
  }

  /**
   * After a journal replay: folders the journal made, removed or renamed
   * exist in metadata exactly when some node has them (another mount's
   * journal, replayed independently, may have made one that this mount
   * removed, or the other way round). Deepest first; a folder metadata still
   * has entries in stays; nothing is removed unless every node answered.
   */
  private async reconcileFolders(paths: string[]): Promise<void> {
    const allAnswered = () => this.nodes.every((n) => n.state === 'dead' || this.io.usable(n));
    for (const vpath of [...new Set(paths)].sort((a, b) => b.length - a.length)) {
      if (vpath === '/') continue;
      try {
        await this.locked([vpath], async (db) => {
          const meta = await lookup(db, vpath);
          if (meta?.type === 'file') return;
          const stats = await Promise.all(this.usableNodes().map((n) => this.io.lstatOrNull(n, vpath).catch(() => null)));
          const dir = stats.find((st) => st?.isDirectory());
          if (dir && !meta) {
            await db.txn((tx) => makeFolder(tx, vpath, { mode: dir.mode & 0o7777, uid: dir.uid, gid: dir.gid, mtimeUs: Math.round(dir.mtimeMs * 1000) }));
            this.log.info({ path: vpath }, 'after the journal replay: folder registered (a node has it)');
          } else if (!dir && meta?.type === 'folder' && allAnswered() && !(await folderHasChildren(db, meta.folder.id))) {
            await db.txn((tx) => removeFolder(tx, vpath));
            this.log.info({ path: vpath }, 'after the journal replay: folder removed (no node has it)');
          }
        });
      } catch (err) {
        if (isConnectionError(err)) throw err;
        this.log.warn({ path: vpath, err: (err as Error).message }, 'reconcile of a folder after replay failed');
      }
    }
    this.cache.clear();
  }

  /** sha256 and size of the bytes at `vpath` on `node`. */
  private async hashOnNode(node: StorageNode, vpath: string): Promise<{ checksum: string; size: number }> {
    const fh = await this.io.open(node, vpath, OPEN.RDONLY);
    try {
      const hash = createHash('sha256');
      let size = 0;
      for (;;) {
        const buf = await this.io.read(node, fh, HASH_CHUNK, size);
        if (buf.length === 0) break;
        hash.update(buf);
        size += buf.length;
      }
      return { checksum: hash.digest('hex'), size };
    } finally {
      await this.io.close(node, fh);
    }
  }

  private async replayOne(rec: Stamped): Promise<void> {
    if (rec.op === 'commit') this.touched.set(rec.path, { node: rec.node, checksum: rec.checksum });
    else if (rec.op === 'unlink' || rec.op === 'symlink') this.touched.set(rec.path, null);
    else if (rec.op === 'mkdir' || rec.op === 'rmdir') this.touchedDirs.add(rec.path);
    else if (rec.op === 'rename') {
      this.touched.set(rec.to, this.touched.get(rec.from) ?? null);
      this.touched.set(rec.from, null);
      this.touchedDirs.add(rec.from);
      this.touchedDirs.add(rec.to);
    }
    try {
      await this.store.txn((tx) => this.applyRecord(tx, rec));
    } catch (err) {
      if (isConnectionError(err)) throw err;
      const path = 'path' in rec ? rec.path : rec.from;
      this.log.warn({ rec, err: (err as Error).message }, 'journal record no longer applies: recorded as a problem');
      await recordProblem(this.store, { kind: 'journal-conflict', path, detail: `${rec.op} from the mount journal (${new Date(rec.at).toISOString()}): ${(err as Error).message}` });
    }
  }

  /** Registered node ids for node names, with the node paths that go with them (same order). */
  private handledOf(names: readonly string[], paths?: readonly string[]): { ids: number[]; paths: string[] | undefined } {
    const ids: number[] = [];
    const ps: string[] = [];
    names.forEach((name, i) => {
      const n = this.nodes.find((x) => x.name === name && x.id > 0);
      if (!n) return;
      ids.push(n.id);
      if (paths) ps.push(paths[i]!);
    });
    return { ids, paths: paths ? ps : undefined };
  }

  /** Apply one metadata change in a transaction (live or from the journal). */
  private async applyRecord(tx: Queryable, rec: JournalRecord): Promise<FileRow | FolderRow | null> {
    switch (rec.op) {
      case 'commit': {
        const node = this.nodes.find((n) => n.name === rec.node);
        if (!node || node.id === 0) throw new FsError('EIO', `node ${rec.node} is not registered`);
        const r = await commitFileVersion(tx, {
          path: rec.path,
          size: rec.size,
          checksum: rec.checksum,
          mode: rec.mode,
          uid: rec.uid,
          gid: rec.gid,
          mtimeUs: rec.mtimeUs,
          atimeUs: rec.atimeUs,
          classification: this.classify(rec.path),
          nodeId: node.id,
        });
        await announce(tx, { origin: this.origin, paths: [rec.path] });
        return r.file;
      }
      case 'unlink': {
        const h = this.handledOf(rec.nodes, rec.paths);
        return unlinkFile(tx, rec.path, h.ids, h.paths);
      }
      case 'rename': {
        const h = this.handledOf(rec.nodes, rec.paths);
        await renamePath(tx, rec.from, rec.to, h.ids, h.ids, h.paths);
        return null;
      }
      case 'mkdir':
        return makeFolder(tx, rec.path, rec);
      case 'rmdir':
        await removeFolder(tx, rec.path);
        return null;
      case 'setattr':
        await setAttributes(tx, rec.path, rec);
        return null;
      case 'symlink':
        return makeSymlink(tx, rec.path, rec.target, { mode: 0o777, uid: rec.uid, gid: rec.gid }, this.classify(rec.path));
    }
  }

  /** A namespace change in one round trip (no BEGIN/COMMIT); undefined for records that need a transaction. */
  private async applyFast(rec: JournalRecord, db: Queryable): Promise<FileRow | FolderRow | null | undefined> {
    switch (rec.op) {
      case 'unlink': {
        const h = this.handledOf(rec.nodes, rec.paths);
        return unlinkFileFast(db, rec.path, h.ids, h.paths);
      }
      case 'rename': {
        const h = this.handledOf(rec.nodes, rec.paths);
        await renamePathFast(db, rec.from, rec.to, h.ids, h.ids, h.paths);
        return null;
      }
      case 'mkdir':
        return makeFolderFast(db, rec.path, rec);
      case 'rmdir':
        await removeFolderFast(db, rec.path);
        return null;
      case 'setattr':
        await setAttributesFast(db, rec.path, rec);
        return null;
      default:
        return undefined;
    }
  }

  /**
   * Make a metadata change: in one transaction when the database answers,
   * else durably journaled (and replayed later). Returns the row written, or
   * undefined when journaled.
   */
  private async mutate(rec: JournalRecord, db: MetaDb = this.store): Promise<FileRow | FolderRow | null | undefined> {
    if (!this.degraded) {
      try {
        if (rec.op === 'commit') {
          const node = this.nodes.find((n) => n.name === rec.node);
          if (node && node.id > 0) {
            const payload = JSON.stringify({ origin: this.origin, paths: [rec.path] } satisfies MetaChange);
            const row = await commitVersionFast(
              db,
              { path: rec.path, size: rec.size, checksum: rec.checksum, mode: rec.mode, uid: rec.uid, gid: rec.gid, mtimeUs: rec.mtimeUs, atimeUs: rec.atimeUs, classification: this.classify(rec.path), nodeId: node.id },
              META_CHANNEL,
              payload,
            );
            if (row) return row;
          }
        }
        const fast = await this.applyFast(rec, db);
        if (fast !== undefined) return fast;
        return await db.txn((tx) => this.applyRecord(tx, rec));
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        this.enterDegraded(err);
      }
    }
    await this.journal.append(journaled(rec));
    return undefined;
  }

  /**
   * Run a change of node bytes at `paths` (node paths and virtual paths)
   * under their grid-wide locks (MetaStore.withPathLocks), `db` being the
   * connection for its metadata statements: no replicator or other mount
   * changes those paths between this change's first node operation and its
   * metadata record. Without the database the change runs unlocked (the
   * replicators cannot act either) and its metadata goes to the journal.
   */
  private locked<T>(paths: Iterable<string>, fn: (db: MetaDb) => Promise<T>): Promise<T> {
    const list = [...paths];
    return this.locallyLocked(list, () => this.gridLocked(list, fn));
  }

  /** Paths this mount is changing right now (see locallyLocked). */
  private readonly pathsInUse = new Map<string, Promise<void>>();

  /**
   * Run `fn` while no other change of this mount holds one of `paths`. The
   * grid-wide locks cannot be had without the database: a change that began
   * while it was away (journal line written, temp not yet renamed into
   * place) must still be finished before the recovery reconciles that path
   * with the nodes, or the recovery registers the bytes from before it and
   * the replicators replace the new ones. Taken in sorted order (no deadlock
   * between changes of several paths), before the grid-wide locks.
   */
  private async locallyLocked<T>(paths: readonly string[], fn: () => Promise<T>): Promise<T> {
    const releases: (() => void)[] = [];
    try {
      for (const key of [...new Set(paths)].sort()) {
        for (let held = this.pathsInUse.get(key); held; held = this.pathsInUse.get(key)) await held;
        let release!: () => void;
        const mine = new Promise<void>((r) => (release = r));
        this.pathsInUse.set(key, mine);
        releases.push(() => {
          if (this.pathsInUse.get(key) === mine) this.pathsInUse.delete(key);
          release();
        });
      }
      return await fn();
    } finally {
      for (const r of releases.reverse()) r();
    }
  }

  private async gridLocked<T>(paths: string[], fn: (db: MetaDb) => Promise<T>): Promise<T> {
    // while degraded only the recovery (replay, reconcile) asks: the database has just answered it
    if (!this.degraded || this.replaying) {
      try {
        return await this.store.withPathLocks(paths, { mode: 'wait', releaseLater: true }, fn);
      } catch (err) {
        if (!(err instanceof PathLockUnavailable)) throw err;
        this.enterDegraded(err.cause ?? err);
      }
    }
    return fn(this.store);
  }

  /** What metadata says about a path (cached); 'offline' when the database is unreachable. */
  private async metaLookup(vpath: string): Promise<Known | 'offline'> {
    if (this.degraded) return 'offline';
    const hit = this.cache.get(vpath);
    if (hit !== undefined) return hit;
    const since = this.cache.generation;
    const replicaGen = this.replicaGen;
    try {
      // a file's replicas come along: an open right after this lookup needs no query of its own
      const found = await lookupWithReplicas(this.store, vpath);
      const e = found?.entry ?? null;
      const known: Known = e === null ? null : e.type === 'folder' ? { type: 'folder', folder: e.folder } : { type: 'file', file: e.file };
      this.cache.set(vpath, known, since);
      if (e?.type === 'file' && found!.replicas && replicaGen === this.replicaGen) {
        if (this.replicaCache.size > 50_000) this.clearReplicas();
        this.replicaCache.set(e.file.id, { version: e.file.version, path: e.file.path, at: Date.now(), rows: found!.replicas });
      }
      return known;
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      this.enterDegraded(err);
      return 'offline';
    }
  }

  /** Usable nodes in configuration order (suspect ones skipped). */
  private usableNodes(): StorageNode[] {
    return this.nodes.filter((n) => n.state !== 'dead' && this.io.usable(n));
  }

  /**
   * Look an entry up on the nodes. The holders come newest first (mtime;
   * ties: configuration order) and the first one's attributes are the
   * entry's: without metadata (a file placed by hand, or the database
   * unreachable) a node holding an older copy must not win over the last
   * write (a replicator's copy keeps its version's mtime).
   */
  private async nodeLookup(vpath: string): Promise<{ stat: Stats; nodes: StorageNode[] } | null> {
    if (isReservedName(vpath.slice(vpath.lastIndexOf('/') + 1))) return null;
    const nodes = this.usableNodes();
    const stats = await Promise.all(nodes.map((n) => this.io.lstatOrNull(n, vpath).catch(() => null)));
    const found = nodes.flatMap((node, i) => (stats[i] ? [{ node, st: stats[i]! }] : []));
    if (found.length === 0) return null;
    const newest = (x: { st: Stats }) => (x.st.isFile() ? Math.floor(x.st.mtimeMs) : -1);
    found.sort((a, b) => newest(b) - newest(a));
    return { stat: found[0]!.st, nodes: found.map((f) => f.node) };
  }

  /** Find an entry: metadata first, then the node folders. null = it does not exist. */
  private async resolve(vpath: string): Promise<Resolved | null> {
    const m = await this.metaLookup(vpath);
    if (m !== null && m !== 'offline') return { src: 'meta', known: m };
    const n = await this.nodeLookup(vpath);
    if (!n) return null;
    if (m === null) {
      // on a node but not in the live tree: hide pending deletes/renames
      try {
        const known = await knownReplicaPaths(this.store, n.nodes.map((x) => x.id), [vpath]);
        if (known.has(vpath)) return null;
      } catch (err) {
        if (!isConnectionError(err)) throw err;
      }
    }
    return { src: 'node', stat: n.stat, nodes: n.nodes };
  }

  private async resolveDir(vpath: string): Promise<Resolved> {
    const r = await this.resolve(vpath);
    if (!r) throw new FsError('ENOENT', vpath);
    if (!isDir(r)) throw new FsError('ENOTDIR', vpath);
    return r;
  }

  // ---------------------------------------------------------------- attributes and listings

  async getattr(vpath: string): Promise<Attr> {
    await this.settled(vpath);
    const w = this.handles.writers(vpath).at(-1);
    if (w) {
      return { mode: S_IFREG | w.mode, uid: w.uid, gid: w.gid, size: w.size, nlink: 1, atime: w.atimeMs, mtime: w.mtimeMs, ctime: w.mtimeMs, blocks: Math.ceil(w.size / 4096) * 8, blksize: 4096, ino: inoOfPath(vpath) };
    }
    const r = await this.resolve(vpath);
    if (!r) throw new FsError('ENOENT', vpath);
    const attr = attrOf(r, vpath);
    if (r.src === 'meta') this.offerAttr(vpath, r.known, attr);
    return attr;
  }

  /**
   * Hand a metadata-cache entry's attributes to the attribute sink when
   * nothing else may answer for the path: the entry is the one the cache
   * holds right now (not one an invalidation overtook), and no writer is
   * open or closing there.
   */
  private offerAttr(vpath: string, known: NonNullable<Known>, attr?: Attr): void {
    if (!this.attrSink || this.cache.live(vpath) !== known || this.closing.has(vpath) || this.handles.writers(vpath).length > 0) return;
    this.attrSink.put(vpath, attr ?? attrOf({ src: 'meta', known }, vpath));
  }

  /** The binding's attribute cache, when there is one (see AttrSink); set by the FUSE adapter. */
  private attrSink: AttrSink | null = null;

  setAttrSink(sink: AttrSink | null): void {
    this.attrSink = sink;
    this.cache.mirror = sink;
  }

  async readdir(vpath: string): Promise<string[]> {
    const r = await this.resolveDir(vpath);
    const names = new Set<string>(['.', '..']);
    const metaNames = new Set<string>();
    if (r.src === 'meta' && r.known.type === 'folder' && this.metaUp) {
      try {
        const since = this.cache.generation;
        const { folders, files } = await listFolder(this.store, r.known.folder.id);
        for (const f of folders) {
          metaNames.add(f.path.slice(f.path.lastIndexOf('/') + 1));
          this.cache.set(f.path, { type: 'folder', folder: f }, since);
        }
        for (const f of files) {
          metaNames.add(f.path.slice(f.path.lastIndexOf('/') + 1));
          this.cache.set(f.path, { type: 'file', file: f }, since);
        }
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        this.enterDegraded(err);
      }
    }
    for (const n of metaNames) names.add(n);
    // the nodes: entries metadata does not know yet
    const nodes = this.usableNodes();
    const listings = await Promise.all(nodes.map((n) => this.io.readdir(n, vpath).catch(() => [])));
    const nodeOnly = new Map<string, StorageNode[]>();
    listings.forEach((list, i) => {
      for (const d of list) {
        // the replicator's temp files and quarantine (.ggfs-*) are not part of the tree
        if (metaNames.has(d.name) || isReservedName(d.name)) continue;
        const arr = nodeOnly.get(d.name) ?? [];
        arr.push(nodes[i]!);
        nodeOnly.set(d.name, arr);
      }
    });
    if (nodeOnly.size && this.metaUp) {
      const paths = [...nodeOnly.keys()].map((n) => joinVirtual(vpath, n));
      try {
        const known = await knownReplicaPaths(this.store, nodes.map((n) => n.id), paths);
        for (const p of known) nodeOnly.delete(p.slice(p.lastIndexOf('/') + 1));
      } catch (err) {
        if (!isConnectionError(err)) throw err;
      }
    }
    for (const n of nodeOnly.keys()) names.add(n);
    for (const w of this.handles.all()) if (w.kind === 'write' && !w.unlinked && parentOf(w.path) === vpath) names.add(w.path.slice(w.path.lastIndexOf('/') + 1));
    return [...names];
  }

  async readlink(vpath: string): Promise<string> {
    const r = await this.resolve(vpath);
    if (!r) throw new FsError('ENOENT', vpath);
    if (r.src === 'meta') {
      if (r.known.type === 'file' && r.known.file.kind === 'symlink') return r.known.file.symlinkTarget!;
      throw new FsError('EINVAL', `${vpath} is not a symlink`);
    }
    if (!r.stat.isSymbolicLink()) throw new FsError('EINVAL', `${vpath} is not a symlink`);
    return this.io.readlink(r.nodes[0]!, vpath);
  }

  async statfs(): Promise<StatfsResult> {
    const active = this.nodes.filter((n) => n.state === 'active' && this.io.usable(n));
    const spaces = await Promise.all(active.map((n) => this.io.space(n).catch(() => null)));
    let total = 0;
    let free = 0;
    let avail = 0;
    let files = 0;
    let ffree = 0;
    for (const s of spaces) {
      if (!s) continue;
      total += s.blocks * s.bsize;
      free += s.bfree * s.bsize;
      avail += s.bavail * s.bsize;
      files += s.files;
      ffree += s.ffree;
    }
    // fuse-native passes 32-bit counts: grow the block size until they fit
    let frsize = 4096;
    while (total / frsize > 0xffffffff) frsize *= 2;
    const cap = (n: number) => Math.min(0xffffffff, Math.floor(n));
    return { bsize: frsize, frsize, blocks: cap(total / frsize), bfree: cap(free / frsize), bavail: cap(avail / frsize), files: cap(files), ffree: cap(ffree), favail: cap(ffree), namemax: 255 };
  }

  // ---------------------------------------------------------------- creating and opening

  private async ensureNodeDir(node: StorageNode, dir: string): Promise<void> {
    const key = `${node.name}\0${dir}`;
    if (dir === '/' || this.nodeDirs.has(key)) return;
    await this.io.mkdirp(node, dir);
    this.nodeDirs.add(key);
    if (this.nodeDirs.size > 100_000) this.nodeDirs.clear();
  }

  private forgetNodeDirs(prefix: string): void {
    for (const k of this.nodeDirs) {
      const p = k.slice(k.indexOf('\0') + 1);
      if (p === prefix || p.startsWith(prefix + '/')) this.nodeDirs.delete(k);
    }
  }

  /** Create a file on a node, making its parent folders there (again, if another mount removed them). */
  private async openNew(node: StorageNode, vpath: string, mode: number): Promise<WriteHandle['fh']> {
    await this.ensureNodeDir(node, parentOf(vpath));
    try {
      return await this.io.open(node, vpath, OPEN.CREAT | OPEN.RDWR | OPEN.TRUNC, mode);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw err;
      this.forgetNodeDirs(parentOf(vpath));
      await this.ensureNodeDir(node, parentOf(vpath));
      return this.io.open(node, vpath, OPEN.CREAT | OPEN.RDWR | OPEN.TRUNC, mode);
    }
  }

  /** Active usable nodes ordered by the placement policy. */
  private async placement(vpath: string): Promise<StorageNode[]> {
    const active = this.nodes.filter((n) => n.state === 'active' && this.io.usable(n));
    const policy = PLACEMENT[this.config.mount.placement];
    const needParent = this.config.mount.placement === 'epff';
    const candidates: PlacementCandidate[] = await Promise.all(
      active.map(async (node) => ({
        node,
        freeBytes: await this.io.space(node).then((s) => s.bavail * s.bsize, () => 0),
        parentExists: needParent ? (await this.io.lstatOrNull(node, parentOf(vpath)).catch(() => null)) !== null : false,
      })),
    );
    const ordered = policy(candidates, vpath).map((c) => c.node);
    if (ordered.length === 0) throw new FsError('EROFS', 'no active storage node can take new files');
    return ordered;
  }

  private newWriter(vpath: string, node: StorageNode, nodePath: string, tmp: string | null, fh: WriteHandle['fh'], base: { mode: number; uid: number; gid: number; size: number; fresh: boolean; dirty: boolean; atimeMs?: number; mtimeMs?: number }): WriteHandle {
    const now = Date.now();
    // from now on getattr of the path is the writer's (its size grows with every write)
    this.attrSink?.invalidate(vpath);
    return {
      kind: 'write',
      path: vpath,
      node,
      nodePath,
      tmp,
      fh,
      refs: 1,
      closed: false,
      cow: null,
      hash: base.fresh ? createHash('sha256') : null,
      seqOffset: 0,
      size: base.size,
      dirty: base.dirty,
      wrote: false,
      unlinked: false,
      mode: base.mode & 0o7777,
      uid: base.uid,
      gid: base.gid,
      mtimeMs: base.mtimeMs ?? now,
      atimeMs: base.atimeMs ?? now,
      tail: Promise.resolve(),
      pendingBytes: 0,
      writeError: null,
      redo: [],
      exclusiveTail: Promise.resolve(),
      exclusiveHeld: 0,
    };
  }

  /**
   * Run `fn` as the writer's only commit or truncate (after those before
   * it); writes wait meanwhile (see write). A FLUSH can come while the
   * application still writes: every close(2) of a descriptor sends one,
   * also the close-on-exec in a child the application forks mid-write.
   */
  private async exclusive<T>(h: WriteHandle, fn: () => Promise<T>): Promise<T> {
    const before = h.exclusiveTail;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    h.exclusiveTail = before.then(() => mine);
    h.exclusiveHeld++;
    try {
      await before;
      return await fn();
    } finally {
      h.exclusiveHeld--;
      release();
    }
  }

  /** uid/gid: the caller's (rebuilt binding), else this process's. */
  async create(vpath: string, mode: number, uid = this.uid, gid = this.gid): Promise<number> {
    await this.settled(vpath);
    await this.resolveDir(parentOf(vpath));
    const shared = this.handles.liveWriter(vpath);
    if (shared) return this.share(shared);
    const order = await this.placement(vpath);
    let lastErr: unknown = null;
    for (const node of order) {
      try {
        // the bytes go to a temp file; close renames it into place (a crash never leaves a partial file in the tree)
        const tmp = this.newTmpPath();
        const fh = await this.openNew(node, tmp, (mode & 0o7777) | 0o600);
        if (uid !== this.uid || gid !== this.gid) await this.io.call(node, `chown ${vpath}`, () => fh.chown(uid, gid)).catch(() => undefined);
        this.cache.invalidate(vpath);
        return this.handles.add(this.newWriter(vpath, node, vpath, tmp, fh, { mode, uid, gid, size: 0, fresh: true, dirty: true }));
      } catch (err) {
        lastErr = err;
        if (!TRY_NEXT_NODE.has(codeOf(err) ?? '')) throw err;
        this.log.info({ node: node.name, path: vpath, code: codeOf(err) }, 'create moved to the next node');
        this.io.forgetSpace(node);
      }
    }
    throw lastErr ?? new FsError('ENOSPC');
  }

  /** Current replicas of a metadata file as read candidates, ordered by the read policy (suspect nodes last). */
  private async readCandidates(vpath: string, r: Resolved): Promise<ReadCandidate[]> {
    let all: ReadCandidate[];
    if (r.src === 'meta' && r.known.type === 'file') {
      const file = r.known.file;
      let reps;
      try {
        reps = await this.replicas(file);
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        this.enterDegraded(err);
        const n = await this.nodeLookup(vpath);
        return (n?.nodes ?? []).map((node) => ({ node, path: vpath }));
      }
      all = [];
      for (const rep of reps) {
        if (rep.version !== file.version || rep.nodeState === 'dead') continue;
        const node = this.nodes.find((n) => n.id === rep.nodeId);
        if (node) all.push({ node, path: rep.path });
      }
    } else if (r.src === 'node') {
      // not in metadata: copies of this name on several nodes may differ. Serve the one whose attributes
      // the kernel got (the first node in config order), never size from one node and bytes from another.
      return r.nodes.map((node) => ({ node, path: vpath }));
    } else {
      return [];
    }
    const ordered = READ[this.config.mount.readPolicy](all, vpath);
    return [...ordered.filter((c) => this.io.usable(c.node)), ...ordered.filter((c) => !this.io.usable(c.node))];
  }

  /** Another descriptor on a writer this mount has open. */
  private share(w: WriteHandle): number {
    w.refs++;
    return this.handles.add(w);
  }

  /**
   * Descriptors opened with O_APPEND: their writes go to the real end of the
   * file. The kernel computes an append's offset from its cached size,
   * which lags a change made through another mount for up to the attribute
   * time-out; a local disk or NFS (close-to-open) would append at the end.
   */
  private readonly appendFds = new Set<number>();

  async open(vpath: string, flags: number): Promise<number> {
    await this.settled(vpath);
    let fd: number;
    for (let attempt = 0; ; attempt++) {
      try {
        fd = await this.openFd(vpath, flags);
        break;
      } catch (err) {
        // a new version registered by another mount whose bytes are being put in place right now: shortly
        if (!isWrongSize(err) || attempt >= 8) throw err;
        await new Promise((res) => setTimeout(res, 10 * (attempt + 1)));
      }
    }
    if (flags & OPEN.APPEND && (flags & 3) !== OPEN.RDONLY) this.appendFds.add(fd);
    return fd;
  }

  private async openFd(vpath: string, flags: number): Promise<number> {
    const accmode0 = flags & 3;
    const live = this.handles.liveWriter(vpath);
    if (live) {
      // this mount is writing the file: every descriptor sees the same bytes, as on a local disk
      if (accmode0 === OPEN.RDONLY) {
        live.refs++;
        return this.handles.add({ kind: 'read', path: vpath, candidates: [], index: 0, fh: null, writer: live });
      }
      if (flags & OPEN.TRUNC) await this.truncateWriter(live, 0);
      return this.share(live);
    }
    if (accmode0 !== OPEN.RDONLY) {
      // a writer starts from the current version, never from a cached row another mount has replaced
      this.cache.invalidate(vpath);
      this.forgetReplicas(vpath);
    }
    let r = await this.resolve(vpath);
    if (!r) throw new FsError('ENOENT', vpath);
    if (isDir(r)) throw new FsError('EISDIR', vpath);
    const accmode = flags & 3;
    let candidates = await this.readCandidates(vpath, r);
    if (candidates.length === 0 && r.src === 'meta') {
      // the cached row may be a version behind a commit that just landed: look again
      this.cache.invalidate(vpath);
      r = await this.resolve(vpath);
      if (!r) throw new FsError('ENOENT', vpath);
      candidates = await this.readCandidates(vpath, r);
    }
    if (candidates.length === 0) throw new FsError('EIO', `no reachable replica of ${vpath}`);
    if (accmode === OPEN.RDONLY) {
      let h: ReadHandle = { kind: 'read', path: vpath, candidates, index: 0, fh: null, size: sizeOf(r) };
      for (let attempt = 0; ; attempt++) {
        try {
          await this.openReplica(h);
          break;
        } catch (err) {
          if (r.src !== 'meta' || attempt >= 8) throw err;
          // the replica list may have been cached just before a rename, or a new version is registered and its
          // bytes are being put in place right now (metadata first): ask again, shortly
          if (attempt > 0) await new Promise((res) => setTimeout(res, 10 * attempt));
          this.forgetReplicasOf(r);
          this.cache.invalidate(vpath);
          const again = await this.resolve(vpath);
          if (!again) throw new FsError('ENOENT', vpath);
          if (isDir(again)) throw new FsError('EISDIR', vpath);
          r = again;
          h = { kind: 'read', path: vpath, candidates: await this.readCandidates(vpath, again), index: 0, fh: null, size: sizeOf(again) };
        }
      }
      return this.handles.add(h);
    }
    // a writer: one node's bytes become the new version (prefer active nodes). They are written to a
    // temp file (a copy of the current bytes, made at the first write) and published at close.
    const trunc = (flags & OPEN.TRUNC) !== 0;
    const ordered = [...candidates.filter((c) => c.node.state === 'active'), ...candidates.filter((c) => c.node.state !== 'active')];
    const base = attrOf(r, vpath);
    let lastErr: unknown = null;
    for (const c of ordered) {
      try {
        let fh: WriteHandle['fh'];
        let tmp: string | null = null;
        if (trunc) {
          tmp = this.newTmpPath();
          fh = await this.openNew(c.node, tmp, (base.mode & 0o7777) | 0o600);
        } else {
          fh = await this.io.open(c.node, c.path, OPEN.RDONLY);
          const want = sizeOf(r);
          if (want !== undefined) {
            // the bytes a writer starts from must be this version's (see openReplica)
            const st = await this.io.fstat(c.node, fh).catch(async (err: unknown) => {
              await this.io.close(c.node, fh);
              throw err;
            });
            if (st.size !== want) {
              await this.io.close(c.node, fh);
              throw wrongSize(c.node.name, c.path, st.size, want);
            }
          }
        }
        const size = trunc ? 0 : base.size;
        const w = this.newWriter(vpath, c.node, c.path, tmp, fh, { mode: base.mode, uid: base.uid, gid: base.gid, size, fresh: size === 0, dirty: trunc, atimeMs: base.atime, mtimeMs: trunc ? Date.now() : base.mtime });
        if (r.src === 'meta' && r.known.type === 'file') w.fileId = r.known.file.id;
        return this.handles.add(w);
      } catch (err) {
        lastErr = err;
        if (!TRY_NEXT_NODE.has(codeOf(err) ?? '') && codeOf(err) !== 'ENOENT') throw err;
      }
    }
    throw lastErr ?? new FsError('EIO');
  }

  /**
   * Open the reader's current candidate, failing over to the next on errors
   * and on bytes of another size than metadata gives (the wrong bytes: a
   * replica list older than a rename, or a version not in place yet).
   */
  private async openReplica(h: ReadHandle): Promise<void> {
    let lastErr: unknown = null;
    while (h.index < h.candidates.length) {
      const c = h.candidates[h.index]!;
      try {
        const fh = await this.io.open(c.node, c.path, OPEN.RDONLY);
        if (h.size !== undefined) {
          const st = await this.io.fstat(c.node, fh).catch(async (err: unknown) => {
            await this.io.close(c.node, fh);
            throw err;
          });
          if (st.size !== h.size) {
            await this.io.close(c.node, fh);
            throw wrongSize(c.node.name, c.path, st.size, h.size);
          }
        }
        h.fh = fh;
        return;
      } catch (err) {
        lastErr = err;
        this.log.warn({ node: c.node.name, path: c.path, code: codeOf(err) }, 'replica unreadable: failing over');
        this.forgetReplicas(h.path);
        h.index++;
      }
    }
    throw new FsError('EIO', `no replica of ${h.path} could be opened: ${(lastErr as Error)?.message}`);
  }

  /**
   * Read from an open file (fail-over to the next replica inside). With
   * `into` (at least `length` bytes, memory the caller owns after a time-out
   * too), the first attempt reads straight into it and the result is a view
   * of it; after a failed attempt the next ones use fresh memory, since the
   * failed call may still write into `into` later. So a result that is not a
   * view of `into` means `into` must not be reused.
   */
  async read(fd: number, length: number, position: number, into?: Buffer): Promise<Buffer> {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF');
    let dst = into?.subarray(0, length);
    const readAt = async (node: StorageNode, fh: NonNullable<ReadHandle['fh']>): Promise<Buffer> => {
      const buf = dst ?? Buffer.allocUnsafe(length);
      dst = undefined;
      const n = await this.io.readInto(node, fh, buf, position);
      return n === buf.length ? buf : buf.subarray(0, n);
    };
    if (h.kind === 'write') {
      await this.drain(h); // reads see this mount's writes, as on a local disk
      return readAt(h.node, h.fh);
    }
    if (h.writer) {
      const w = h.writer;
      if (!w.closed) {
        await this.drain(w);
        return readAt(w.node, w.fh);
      }
      // the writer closed (its bytes are published): read the file as anyone would
      h.writer = undefined;
      const r = await this.resolve(h.path);
      if (!r || isDir(r)) throw new FsError('ENOENT', h.path);
      h.candidates = await this.readCandidates(h.path, r);
      h.index = 0;
      h.size = sizeOf(r);
      if (h.candidates.length === 0) throw new FsError('EIO', `no reachable replica of ${h.path}`);
    }
    for (;;) {
      if (!h.fh) await this.openReplica(h);
      const c = h.candidates[h.index]!;
      try {
        return await readAt(c.node, h.fh!);
      } catch (err) {
        this.log.warn({ node: c.node.name, path: c.path, code: codeOf(err) }, 'read failed: failing over to the next replica');
        this.forgetReplicas(h.path);
        const old = h.fh!;
        h.fh = null;
        void this.io.close(c.node, old);
        h.index++;
        if (h.index >= h.candidates.length) throw new FsError('EIO', `every replica of ${h.path} failed`);
      }
    }
  }

  /**
   * Write-behind: a write is answered once its bytes are queued for the
   * node (in order, at most WRITE_BEHIND_BYTES in flight per writer), so
   * the kernel's next request overlaps this one's storage call. A failure
   * is reported by the next call on the writer (write, fsync, close), as a
   * local disk reports a failed write-back; a file whose write failed is
   * never registered. A full node moves the writer to the next one with
   * every write from the first failure on (mergerfs' moveonenospc).
   * `release(data)` is called once no storage call uses `data` any more
   * (never for a write whose call may still run: a time-out).
   */
  async write(fd: number, data: Buffer, position: number, release?: (data: Buffer) => void): Promise<number> {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF');
    if (h.kind !== 'write') throw new FsError('EBADF', 'not open for writing');
    try {
      // not while a commit or truncate of this writer runs (or waits); from the check to queueWrite below nothing awaits
      for (;;) {
        while (h.exclusiveHeld > 0) await h.exclusiveTail;
        if (h.writeError) await this.drain(h);
        await this.writable(h);
        if (h.exclusiveHeld === 0) break;
      }
    } catch (err) {
      release?.(data);
      throw err;
    }
    if (this.appendFds.has(fd)) position = h.size;
    if (h.hash && position === h.seqOffset) {
      h.hash.update(data);
      h.seqOffset += data.length;
    } else {
      h.hash = null;
    }
    h.size = Math.max(h.size, position + data.length);
    h.dirty = true;
    h.wrote = true;
    h.mtimeMs = Date.now();
    this.queueWrite(h, data, position, release);
    while (h.pendingBytes > WRITE_BEHIND_BYTES) await h.tail;
    return data.length;
  }

  /** Hand one write to the node after the writer's earlier ones (see write). */
  private queueWrite(h: WriteHandle, data: Buffer, position: number, release?: (data: Buffer) => void): void {
    h.pendingBytes += data.length;
    h.tail = h.tail.then(async () => {
      try {
        if (h.writeError) {
          // after a failure nothing more goes to that node: the order of writes stays intact for a redo
          if (isFull(h.writeError)) h.redo.push({ data, position });
          return;
        }
        await this.writeAll(h, data, position);
        release?.(data);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        h.writeError ??= e;
        if (isFull(e) && isFull(h.writeError)) h.redo.push({ data, position }); // kept (not released) for the redo
      } finally {
        h.pendingBytes -= data.length;
      }
    });
  }

  /**
   * Wait for a writer's writes in flight. A full node: the writer moves to
   * the next node and the writes it could not take are applied there. Any
   * other failure is thrown (and stays: the writer never registers).
   */
  private async drain(h: WriteHandle): Promise<void> {
    await h.tail;
    const err = h.writeError;
    if (!err) return;
    if (!isFull(err) || h.closed) throw err;
    await this.moveWriter(h, err);
    const redo = h.redo;
    h.redo = [];
    h.writeError = null;
    for (const r of redo) await this.writeAll(h, r.data, r.position);
  }

  /** All of `data` at `position` in the writer's file on its node (a short write is retried for the rest). */
  private async writeAll(h: WriteHandle, data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const n = await this.io.write(h.node, h.fh, done ? data.subarray(done) : data, position + done);
      if (n <= 0) throw Object.assign(new Error(`short write on ${h.node.name}`), { code: 'EIO' });
      done += n;
    }
  }

  /** Copy a writer's first `size` bytes from its current file to `fh` on `node`; returns the sha256 and the bytes copied. */
  private async copyWriterBytes(h: WriteHandle, node: StorageNode, fh: WriteHandle['fh'], size: number): Promise<{ hash: ReturnType<typeof createHash>; copied: number }> {
    const hash = createHash('sha256');
    let pos = 0;
    while (pos < size) {
      const buf = await this.io.read(h.node, h.fh, Math.min(HASH_CHUNK, size - pos), pos);
      if (buf.length === 0) break;
      await this.io.write(node, fh, buf, pos);
      hash.update(buf);
      pos += buf.length;
    }
    return { hash, copied: pos };
  }

  /** A new temp file for a writer on `node`, owned like the file it becomes. */
  private async openTmp(node: StorageNode, mode: number, uid: number, gid: number): Promise<{ tmp: string; fh: WriteHandle['fh'] }> {
    const tmp = this.newTmpPath();
    const fh = await this.openNew(node, tmp, (mode & 0o7777) | 0o600);
    if (uid !== this.uid || gid !== this.gid) await this.io.call(node, `chown ${tmp}`, () => fh.chown(uid, gid)).catch(() => undefined);
    return { tmp, fh };
  }

  /**
   * Make sure a writer's bytes are in its own temp file: copy-on-write of
   * the published bytes at the first change (single flight). `keep` = 0
   * skips the copy (the change truncates everything anyway).
   */
  private async writable(h: WriteHandle, keep = h.size): Promise<void> {
    while (!h.tmp) {
      h.cow ??= this.copyOnWrite(h, keep).finally(() => {
        h.cow = null;
      });
      await h.cow;
    }
  }

  private async copyOnWrite(h: WriteHandle, keep: number): Promise<void> {
    // the temp goes next to the published bytes when that node takes writes; else (read-only, full, down)
    // to the next node of the placement policy, the bytes copied across
    let node = h.node;
    let t: { tmp: string; fh: WriteHandle['fh'] } | null = null;
    let lastErr: unknown = null;
    const order = [h.node, ...(await this.placement(h.path).catch(() => [] as StorageNode[])).filter((n) => n.name !== h.node.name)];
    for (const n of order) {
      if (n !== h.node && n.state !== 'active') continue;
      try {
        t = await this.openTmp(n, h.mode, h.uid, h.gid);
        node = n;
        break;
      } catch (err) {
        lastErr = err;
        if (!TRY_NEXT_NODE.has(codeOf(err) ?? '')) throw err;
        this.log.info({ node: n.name, path: h.path, code: codeOf(err) }, 'write moved to the next node');
      }
    }
    if (!t) throw lastErr ?? new FsError('EROFS', `no node takes writes for ${h.path}`);
    const { tmp, fh } = t;
    let copied: { hash: ReturnType<typeof createHash>; copied: number };
    try {
      copied = await this.copyWriterBytes(h, node, fh, Math.min(keep, h.size));
    } catch (err) {
      await this.io.close(node, fh);
      await this.io.unlink(node, tmp).catch(() => undefined);
      throw err;
    }
    const old = h.fh;
    const oldNode = h.node;
    h.fh = fh;
    h.tmp = tmp;
    h.size = copied.copied;
    h.hash = copied.hash;
    h.seqOffset = copied.copied;
    if (node !== oldNode) {
      // published from another node: this node's copy (if any) becomes a stale replica for the replicator
      h.node = node;
      h.nodePath = h.path;
    }
    await this.io.close(oldNode, old);
  }

  /**
   * The writer's node is full: copy what was written so far to the next node
   * of the placement policy and go on there (mergerfs' moveonenospc). The
   * temp left behind is removed; the node's published copy, if any, becomes
   * a stale replica for the replicator to refresh.
   */
  private async moveWriter(h: WriteHandle, cause: unknown): Promise<void> {
    const from = h.node;
    const order = (await this.placement(h.path)).filter((n) => n.name !== from.name);
    for (const node of order) {
      let t: { tmp: string; fh: WriteHandle['fh'] } | null = null;
      try {
        t = await this.openTmp(node, h.mode, h.uid, h.gid);
        const { copied } = await this.copyWriterBytes(h, node, t.fh, h.size);
        if (copied < h.size) await this.io.ftruncate(node, t.fh, h.size);
      } catch (err) {
        if (t) {
          await this.io.close(node, t.fh);
          await this.io.unlink(node, t.tmp).catch(() => undefined);
        }
        if (TRY_NEXT_NODE.has(codeOf(err) ?? '')) continue;
        throw err;
      }
      this.log.info({ path: h.path, from: from.name, to: node.name, bytes: h.size }, 'node full: file moved to the next node');
      await this.io.close(from, h.fh);
      if (h.tmp) await this.io.unlink(from, h.tmp).catch(() => undefined);
      h.node = node;
      h.fh = t.fh;
      h.tmp = t.tmp;
      h.nodePath = h.path;
      this.io.forgetSpace(from);
      return;
    }
    throw cause;
  }

  /** sha256 of a writer's bytes: the streamed one when writes were sequential and covered the file, else re-read from the node. */
  private async checksum(h: WriteHandle): Promise<{ checksum: string; size: number }> {
    if (h.hash && h.seqOffset === h.size) return { checksum: h.hash.copy().digest('hex'), size: h.size };
    if (h.size === 0) return { checksum: EMPTY_SHA256, size: 0 };
    const hash = createHash('sha256');
    let pos = 0;
    for (;;) {
      const buf = await this.io.read(h.node, h.fh, HASH_CHUNK, pos);
      if (buf.length === 0) break;
      hash.update(buf);
      pos += buf.length;
    }
    return { checksum: hash.digest('hex'), size: pos };
  }

  /**
   * Register a writer's bytes as the file's new version and publish them:
   * intent line, metadata commit (one statement, or the journal), then the
   * temp renamed over the path on the node. Metadata first: a crash in
   * between is finished by the next start from the intent; the previous
   * bytes stay in place until the new version is registered.
   */
  private commit(h: WriteHandle): Promise<void> {
    return this.exclusive(h, () => this.commitNow(h));
  }

  private async commitNow(h: WriteHandle): Promise<void> {
    // a commit queued behind another that already registered everything
    if (!h.dirty) return;
    // every write in flight is on the node (or its failure is thrown: nothing half-written is registered)
    await this.drain(h);
    if (h.unlinked || !h.tmp) {
      h.dirty = false;
      return;
    }
    h.dirty = false;
    h.wrote = false;
    // assigned inside the locked section; read by the catch below
    const pending: { intent: Intent | null } = { intent: null };
    try {
      const tmp = h.tmp;
      const { checksum, size } = await this.checksum(h);
      const node = h.node;
      // the node's file gets the attributes metadata will have (walk and scrub compare them)
      if ((h.mode & 0o7777) !== ((h.mode & 0o7777) | 0o600)) await this.io.call(node, `chmod ${h.path}`, () => h.fh.chmod(h.mode & 0o7777));
      await this.io.call(node, `utimes ${h.path}`, () => h.fh.utimes(h.atimeMs / 1000, h.mtimeMs / 1000));
      // the path's lock from the commit to the bytes in place: no replicator touches the path in between
      await this.locked([h.path, h.nodePath], async (db) => {
        const intent = (pending.intent = await this.intents.add({ node: node.name, tmp, path: h.path, checksum, size }));
        // a lookup running meanwhile must not cache the row from before this commit (see onNotify)
        this.cache.invalidate(h.path);
        const since = this.cache.generation;
        const row = await this.mutate(
          {
            op: 'commit',
            path: h.path,
            node: node.name,
            size,
            checksum,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            mtimeUs: Math.round(h.mtimeMs * 1000),
            atimeUs: Math.round(h.atimeMs * 1000),
          },
          db,
        );
        // registered: from here on the temp is the file's current bytes on this node
        pending.intent = null;
        const old = h.nodePath;
        const target = h.path;
        h.tmp = null;
        h.nodePath = target;
        try {
          await this.publish(node, tmp, target);
          await this.intents.done(intent.id);
        } catch (err) {
          // the resolver retries the rename (metadata has the version); the handle reads its temp meanwhile
          this.intents.release(intent.id);
          this.log.warn({ path: target, node: node.name, code: codeOf(err), err: (err as Error).message }, 'new version registered but not yet in place on the node: retried');
        }
        if (row && 'checksum' in row) {
          this.cache.set(target, { type: 'file', file: row }, since);
          h.fileId = row.id;
        } else this.cache.invalidate(target);
        this.forgetReplicas(target);
        if (old !== target && this.metaUp) {
          // this node's previous copy sat at an older path (a rename still pending there): the new one replaces it
          const taken = await pathTakenOnNode(db, node.id, old, h.fileId ?? -1).catch(() => true);
          if (!taken) await this.io.unlink(node, old).catch(() => undefined);
        }
      });
    } catch (err) {
      if (pending.intent) {
        // not registered: nothing to finish; the temp stays the handle's
        await this.intents.done(pending.intent.id).catch(() => undefined);
      }
      h.dirty = true;
      h.wrote = true;
      throw err;
    }
  }

  async flush(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF');
    // every close(2) of a changed file registers it, also a file created (or truncated) and closed without a
    // write: once close returns, other mounts see it (close-to-open, as NFS). The shell's `> f` (a close of
    // the dup'd descriptor first) so costs two commits, the first of the empty file.
    if (h.kind === 'write' && h.dirty) await this.commit(h);
  }

  async fsync(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF');
    const w = h.kind === 'write' ? h : h.writer;
    if (w && !w.closed) {
      await this.drain(w);
      await this.io.fsync(w.node, w.fh);
      if (w.dirty) {
        await this.commit(w);
        await this.io.fsyncDir(w.node, parentOf(w.path)).catch(() => undefined);
      }
    }
  }

  /**
   * Writers being closed (their last descriptor released) by path, until
   * their version is registered and in place. The kernel sends RELEASE after
   * close(2) has returned, so the application may already stat or open the
   * path again: those calls wait here instead of finding neither the writer
   * (gone from the handle table) nor the file (not published yet).
   */
  private readonly closing = new Map<string, Promise<void>>();

  /** Wait until a writer of `vpath` being closed is done (see `closing`). */
  private async settled(vpath: string): Promise<void> {
    const p = this.closing.get(vpath);
    if (p) await p.catch(() => undefined);
  }

  /** Drop one descriptor's hold on a writer; the last one registers what is left and closes it. */
  private async releaseWriter(w: WriteHandle): Promise<void> {
    if (--w.refs > 0) return;
    const path = w.path;
    const done = this.finishWriter(w);
    this.closing.set(path, done);
    try {
      await done;
    } finally {
      if (this.closing.get(path) === done) this.closing.delete(path);
    }
    // the version just registered is what getattr answers from now on (a stat right after a write is common)
    const known = this.cache.live(path);
    if (known) this.offerAttr(path, known);
  }

  private async finishWriter(w: WriteHandle): Promise<void> {
    try {
      if (w.dirty) await this.commit(w);
    } finally {
      await w.tail; // no write in flight on the descriptor being closed
      w.closed = true;
      await this.io.close(w.node, w.fh);
      if (w.tmp) {
        if (w.unlinked) await this.io.unlink(w.node, w.tmp).catch(() => undefined);
        else this.log.warn({ path: w.path, node: w.node.name, tmp: w.tmp }, 'closed without being registered: its bytes stay in the temp until the next start');
      }
    }
  }

  async release(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) return;
    this.appendFds.delete(fd);
    if (h.kind === 'write') {
      // the last descriptor: marked closing before it leaves the handle table (no window where the path is unknown)
      const released = this.releaseWriter(h);
      this.handles.remove(fd);
      return released;
    }
    this.handles.remove(fd);
    if (h.writer) await this.releaseWriter(h.writer);
    if (h.fh) await this.io.close(h.candidates[h.index]!.node, h.fh);
  }

  /** Truncate (or extend) a writer's bytes. */
  private truncateWriter(w: WriteHandle, size: number): Promise<void> {
    return this.exclusive(w, () => this.truncateNow(w, size));
  }

  private async truncateNow(w: WriteHandle, size: number): Promise<void> {
    await this.drain(w);
    await this.writable(w, size);
    await this.io.ftruncate(w.node, w.fh, size);
    if (size === 0) {
      w.hash = createHash('sha256');
      w.seqOffset = 0;
    } else if (size !== w.seqOffset) {
      w.hash = null;
    }
    w.size = size;
    w.dirty = true;
    w.wrote = true; // truncate(2) is open+ftruncate+close: register at that close, not at the later release
    w.mtimeMs = Date.now();
  }

  async ftruncate(fd: number, size: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF');
    if (h.kind !== 'write') throw new FsError('EBADF', 'not open for writing');
    await this.truncateWriter(h, size);
  }

  async truncate(vpath: string, size: number): Promise<void> {
    await this.settled(vpath);
    const w = this.handles.liveWriter(vpath);
    if (w) return this.truncateWriter(w, size);
    const fd = await this.open(vpath, OPEN.RDWR);
    try {
      await this.ftruncate(fd, size);
    } finally {
      await this.release(fd);
    }
  }

  // ---------------------------------------------------------------- namespace

  /** Replica locations of a metadata file: node -> path on that node. */
  private async replicaPaths(r: Resolved): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (r.src !== 'meta' || r.known.type !== 'file' || !this.metaUp) return out;
    try {
      for (const rep of await this.replicas(r.known.file)) out.set(rep.nodeName, rep.path);
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      this.enterDegraded(err);
    }
    return out;
  }

  /** The metadata entry a change applies to, for its intent. */
  private entryOf(r: Resolved | null): Pick<ChangeIntent, 'fileId' | 'version' | 'folderId'> {
    if (r?.src === 'meta' && r.known.type === 'file') return { fileId: r.known.file.id, version: r.known.file.version, folderId: null };
    if (r?.src === 'meta' && r.known.type === 'folder') return { fileId: null, version: null, folderId: r.known.folder.id };
    return { fileId: null, version: null, folderId: null };
  }

  /**
   * Run an unlink or rename's node changes and metadata record under an
   * intent (see ChangeIntent): a crash in between is finished by the next
   * start. When `fn` fails, the intent goes to the resolver (finishChange
   * does nothing when metadata no longer shows the entry as it was).
   */
  private async withChangeIntent<T>(i: Omit<ChangeIntent, 'id'>, fn: () => Promise<T>): Promise<T> {
    if (i.fileId === null && i.folderId === null) return fn();
    const intent = await this.intents.add(i);
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      this.intents.release(intent.id);
      throw err;
    }
    await this.intents.done(intent.id);
    return result;
  }

  /**
   * Run `fn` on every usable node; returns the names of the nodes where it
   * succeeded or where there was nothing to do (ENOENT; those also in
   * `absent`). Other errors are logged; such nodes keep pending work.
   */
  private async onEveryNode(what: string, fn: (node: StorageNode) => Promise<unknown>): Promise<{ handled: string[]; absent: string[]; errors: { node: string; err: unknown }[] }> {
    const nodes = this.nodes.filter((n) => n.state !== 'dead');
    const handled: string[] = [];
    const absent: string[] = [];
    const errors: { node: string; err: unknown }[] = [];
    await Promise.all(
      nodes.map(async (node) => {
        if (!this.io.usable(node)) {
          errors.push({ node: node.name, err: new FsError('EIO', 'node suspect') });
          return;
        }
        try {
          await fn(node);
          handled.push(node.name);
        } catch (err) {
          if (codeOf(err) === 'ENOENT') {
            handled.push(node.name);
            absent.push(node.name);
          } else {
            errors.push({ node: node.name, err });
            this.log.warn({ node: node.name, what, code: codeOf(err), err: (err as Error).message }, 'node not updated: left as pending work');
          }
        }
      }),
    );
    return { handled, absent, errors };
  }

  async unlink(vpath: string): Promise<void> {
    await this.settled(vpath);
    const r = await this.resolve(vpath);
    const writers = this.handles.writers(vpath);
    if (!r && writers.length === 0) throw new FsError('ENOENT', vpath);
    if (r && isDir(r)) throw new FsError('EISDIR', vpath);
    const reps = r ? await this.replicaPaths(r) : new Map<string, string>();
    const intent = { kind: 'unlink' as const, path: vpath, ...this.entryOf(r), paths: Object.fromEntries(reps) };
    await this.locked([vpath, ...reps.values()], (db) =>
      this.withChangeIntent(intent, async () => {
        const { handled, absent } = await this.onEveryNode(`unlink ${vpath}`, (node) => this.unlinkOnNode(node, vpath, reps));
        this.log.debug({ op: 'unlink', path: vpath, fileId: intent.fileId, nodePaths: intent.paths, handled, absent }, 'mount: unlinked on the nodes');
        this.forgetReplicas(vpath);
        this.handles.unlinked(vpath);
        if (!r || r.src === 'meta' || !this.metaUp) await this.mutate({ op: 'unlink', path: vpath, nodes: handled, paths: handled.map((n) => reps.get(n) ?? vpath), absent }, db);
      }),
    );
    this.forgetReplicasOf(r);
    this.cache.invalidate(vpath);
  }

  async mkdir(vpath: string, mode: number, uid = this.uid, gid = this.gid): Promise<void> {
    await this.resolveDir(parentOf(vpath));
    if (await this.resolve(vpath)) throw new FsError('EEXIST', vpath);
    await this.locked([vpath], async (db) => {
      const { handled } = await this.onEveryNode(`mkdir ${vpath}`, async (node) => {
        await this.ensureNodeDir(node, parentOf(vpath));
        await this.io.mkdir(node, vpath).catch(async (err: unknown) => {
          if (codeOf(err) === 'EEXIST') return;
          if (codeOf(err) !== 'ENOENT') throw err;
          // the parent went away on this node (another client): make the path again
          this.forgetNodeDirs(parentOf(vpath));
          await this.io.mkdirp(node, vpath);
        });
      });
      if (handled.length === 0 && !this.metaUp) throw new FsError('EIO', 'no node and no database reachable');
      await this.mutate({ op: 'mkdir', path: vpath, mode: mode & 0o7777, uid, gid }, db);
    });
    this.cache.invalidate(vpath);
  }

  /** True when any reachable node has entries in the folder. */
  private async nodeDirHasEntries(vpath: string): Promise<boolean> {
    const lists = await Promise.all(this.usableNodes().map((n) => this.io.readdir(n, vpath).catch(() => [])));
    return lists.some((l) => l.length > 0);
  }

  async rmdir(vpath: string): Promise<void> {
    if (vpath === '/') throw new FsError('EBUSY');
    const r = await this.resolveDir(vpath);
    await this.locked([vpath], async (db) => {
      // checked under the lock: nothing can be placed in the folder meanwhile
      if (r.src === 'meta' && r.known.type === 'folder' && this.metaUp) {
        try {
          if (await folderHasChildren(db, r.known.folder.id)) throw new FsError('ENOTEMPTY', vpath);
        } catch (err) {
          if (!isConnectionError(err)) throw err;
          this.enterDegraded(err);
        }
      }
      if (await this.nodeDirHasEntries(vpath)) throw new FsError('ENOTEMPTY', vpath);
      for (const w of this.handles.all()) if (w.kind === 'write' && !w.unlinked && w.path.startsWith(vpath + '/')) throw new FsError('ENOTEMPTY', vpath);
      await this.onEveryNode(`rmdir ${vpath}`, (node) => this.io.rmdir(node, vpath));
      this.forgetNodeDirs(vpath);
      if (r.src === 'meta' || !this.metaUp) {
        await this.mutate({ op: 'rmdir', path: vpath }, db).catch((err: unknown) => {
          if (codeOf(err) !== 'ENOENT') throw err;
        });
      }
    });
    this.cache.invalidateSubtree(vpath);
  }

  async rename(from: string, to: string): Promise<void> {
    if (from === to) return;
    await this.settled(from);
    await this.settled(to);
    if (to.startsWith(from + '/')) throw new FsError('EINVAL', 'cannot move a folder into itself');
    const writers = this.handles.writers(from);
    const src = await this.resolve(from);
    if (!src && writers.length === 0) throw new FsError('ENOENT', from);
    await this.resolveDir(parentOf(to));
    const dst = await this.resolve(to);
    const srcIsDir = src ? isDir(src) : false;
    if (dst) {
      const dstIsDir = isDir(dst);
      if (srcIsDir && !dstIsDir) throw new FsError('ENOTDIR', to);
      if (!srcIsDir && dstIsDir) throw new FsError('EISDIR', to);
    }
    const reps = src ? await this.replicaPaths(src) : new Map<string, string>();
    const dstReps = dst ? await this.replicaPaths(dst) : new Map<string, string>();
    await this.locked([from, to, ...reps.values(), ...dstReps.values()], async (db) => {
      if (dst && isDir(dst)) {
        // checked under the lock: nothing can be placed in the folder meanwhile
        if (dst.src === 'meta' && dst.known.type === 'folder' && this.metaUp && (await folderHasChildren(db, dst.known.folder.id))) throw new FsError('ENOTEMPTY', to);
        if (await this.nodeDirHasEntries(to)) throw new FsError('ENOTEMPTY', to);
      }
      const intent = { kind: 'rename' as const, path: from, to, ...this.entryOf(src), paths: Object.fromEntries(reps), dstPaths: Object.fromEntries(dstReps) };
      await this.withChangeIntent(intent, async () => {
        const occupied = srcIsDir ? new Set<string>() : await this.occupiedAt(db, to, [intent.fileId, this.entryOf(dst).fileId]);
        const step = { from, to, srcPaths: reps, dstPaths: dstReps, srcIsDir, dstExists: Boolean(dst), finishing: false, occupied };
        const { handled, absent } = await this.onEveryNode(`rename ${from}`, (node) => this.renameOnNode(node, step));
        this.log.debug({ op: 'rename', from, to, folder: srcIsDir, fileId: intent.fileId, nodePaths: intent.paths, dstPaths: intent.dstPaths, handled, absent }, 'mount: renamed on the nodes');
        this.forgetNodeDirs(from);
        this.forgetNodeDirs(to);
        this.forgetReplicas(from);
        this.forgetReplicas(to);
        if (srcIsDir) this.clearReplicas();
        this.handles.rename(from, to);
        const srcInMeta = src?.src === 'meta';
        if (srcInMeta || !this.metaUp) {
          await this.mutate({ op: 'rename', from, to, nodes: handled, paths: srcIsDir ? undefined : handled.map((n) => reps.get(n) ?? from), absent }, db).catch((err: unknown) => {
            // a file created by this mount and not registered yet: nothing to move in metadata
            if (codeOf(err) !== 'ENOENT' || srcInMeta) throw err;
          });
        } else if (dst?.src === 'meta') {
          await this.mutate({ op: 'unlink', path: to, nodes: handled, absent }, db);
        }
      });
    });
    // again after the metadata changed: a lookup running meanwhile may have cached the old replica paths
    this.forgetReplicasOf(src);
    this.forgetReplicasOf(dst);
    if (srcIsDir) this.clearReplicas();
    this.cache.invalidateSubtree(from);
    this.cache.invalidateSubtree(to);
  }

  async symlink(target: string, vpath: string, uid = this.uid, gid = this.gid): Promise<void> {
    await this.resolveDir(parentOf(vpath));
    if (await this.resolve(vpath)) throw new FsError('EEXIST', vpath);
    const order = await this.placement(vpath);
    await this.locked([vpath], async (db) => {
      let placed = false;
      let lastErr: unknown = null;
      for (const node of order) {
        try {
          await this.ensureNodeDir(node, parentOf(vpath));
          await this.io.symlink(node, target, vpath);
          placed = true;
          break;
        } catch (err) {
          lastErr = err;
          if (!TRY_NEXT_NODE.has(codeOf(err) ?? '')) throw err;
        }
      }
      if (!placed) throw lastErr ?? new FsError('EIO');
      await this.mutate({ op: 'symlink', path: vpath, target, uid, gid }, db);
    });
    this.cache.invalidate(vpath);
  }

  /** Apply an attribute change to metadata, open writers and the node copies. */
  private async setattr(vpath: string, attrs: { mode?: number; uid?: number; gid?: number; atimeMs?: number; mtimeMs?: number }, onNode: (node: StorageNode, p: string) => Promise<void>): Promise<void> {
    await this.settled(vpath);
    const writers = this.handles.writers(vpath);
    const r = await this.resolve(vpath);
    if (!r && writers.length === 0) throw new FsError('ENOENT', vpath);
    for (const w of writers) {
      if (attrs.mode !== undefined) w.mode = attrs.mode & 0o7777;
      if (attrs.uid !== undefined) w.uid = attrs.uid;
      if (attrs.gid !== undefined) w.gid = attrs.gid;
      if (attrs.mtimeMs !== undefined) w.mtimeMs = attrs.mtimeMs;
      if (attrs.atimeMs !== undefined) w.atimeMs = attrs.atimeMs;
    }
    const reps = r ? await this.replicaPaths(r) : new Map<string, string>();
    await this.locked([vpath, ...reps.values()], async (db) => {
      await this.onEveryNode(`setattr ${vpath}`, (node) => onNode(node, reps.get(node.name) ?? vpath));
      // a written file still open (cp -a, tar, rsync set attributes before close): its commit carries them
      const carried = writers.some((w) => w.dirty && !w.unlinked);
      if (!carried && ((r && r.src === 'meta') || !this.metaUp)) {
        const rec: JournalRecord = { op: 'setattr', path: vpath };
        if (attrs.mode !== undefined) rec.mode = attrs.mode & 0o7777;
        if (attrs.uid !== undefined) rec.uid = attrs.uid;
        if (attrs.gid !== undefined) rec.gid = attrs.gid;
        if (attrs.mtimeMs !== undefined) rec.mtimeUs = Math.round(attrs.mtimeMs * 1000);
        if (attrs.atimeMs !== undefined) rec.atimeUs = Math.round(attrs.atimeMs * 1000);
        await this.mutate(rec, db);
      }
    });
    this.cache.invalidate(vpath);
  }

  async chmod(vpath: string, mode: number): Promise<void> {
    await this.setattr(vpath, { mode: mode & 0o7777 }, (node, p) => this.io.chmod(node, p, mode & 0o7777));
  }

  /** uid/gid of 0xffffffff (-1) mean "leave unchanged". */
  async chown(vpath: string, uid: number, gid: number): Promise<void> {
    const keep = (n: number) => n === 0xffffffff || n === -1;
    const attrs: { uid?: number; gid?: number } = {};
    if (!keep(uid)) attrs.uid = uid;
    if (!keep(gid)) attrs.gid = gid;
    await this.setattr(vpath, attrs, (node, p) => this.io.lchown(node, p, keep(uid) ? -1 : uid, keep(gid) ? -1 : gid));
  }

  /** An undefined time is left as it is. */
  async utimens(vpath: string, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void> {
    const attrs: { atimeMs?: number; mtimeMs?: number } = {};
    if (atimeMs !== undefined) attrs.atimeMs = atimeMs;
    if (mtimeMs !== undefined) attrs.mtimeMs = mtimeMs;
    if (atimeMs === undefined && mtimeMs === undefined) return;
    await this.setattr(vpath, attrs, async (node, p) => {
      if (atimeMs !== undefined && mtimeMs !== undefined) return this.io.lutimes(node, p, atimeMs, mtimeMs);
      const st = await this.io.lstat(node, p);
      return this.io.lutimes(node, p, atimeMs ?? st.atimeMs, mtimeMs ?? st.mtimeMs);
    });
  }

  /** Hard links cannot be represented (one path per file row): EPERM, as link(2) documents for file systems without them. */
  async link(_from: string, _to: string): Promise<void> {
    throw new FsError('EPERM', 'hard links are not supported by GeoGridFS');
  }

  /** For tests and status: where things stand. */
  status(): Record<string, unknown> {
    return {
      degraded: this.degraded, journal: this.journal.pending, handles: this.handles.size, cache: this.cache.stats(), attrCache: this.attrSink?.stats?.() ?? null, replicaCache: this.replicaCache.size,
      health: this.io.health.snapshot(), nowUs: nowUs(),
    };
  }
}
