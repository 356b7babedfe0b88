/**
 * `replicator watch`: the replicator as a daemon.
 *
 * - LISTEN on geogridfs_work (queue and node_work inserts, node state
 *   changes; sql/0002) and geogridfs_meta (the mount's changes): a
 *   notification schedules a replicate pass within ~200 ms, so a file written
 *   through the mount gets its other copies within seconds.
 * - chokidar on the node folder: files placed by hand are walked (hashed,
 *   registered or attached) once their size settles.
 * - A pass also runs every `intervalSec` (missed notifications, heartbeat),
 *   and after the LISTEN connection comes back from a database restart.
 *   Database errors are logged and retried; the daemon never exits on them.
 */
import path from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import type { ReplicatorContext } from './context.js';
import { replicate, writeHeartbeat, formatReplicateSummary, type ReplicateStats } from './replicate.js';
import { walk } from './walk.js';
import { META_CHANNEL } from '../meta/files.js';
import { isReservedName } from '../storage/copy.js';
import { isConnectionError, type ListenHandle } from '../meta/store.js';

export const WORK_CHANNEL = 'geogridfs_work';

/** How long after a database outage files seen on the node wait before they are walked in. */
export const REPLAY_GRACE_MS = 30_000;

export interface WatchOptions {
  /** a pass at least this often (default 60 s) */
  intervalSec?: number;
  /** debounce of notifications and file events (default 200 ms) */
  debounceMs?: number;
  /** called after every pass (tests, logs) */
  onPass?: (s: ReplicateStats) => void;
  /** watch the folder for files placed by hand (default true) */
  watchFiles?: boolean;
}

export async function watch(ctx: ReplicatorContext, opts: WatchOptions = {}): Promise<void> {
  const { log, store } = ctx;
  const intervalMs = (opts.intervalSec ?? 60) * 1000;
  const debounceMs = opts.debounceMs ?? 200;
  let wanted = true;
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  const handles: ListenHandle[] = [];
  const touched = new Set<string>();
  let watcher: FSWatcher | null = null;
  let wake: (() => void) | null = null;
  // Files that appear while the database is away, and right after it is back,
  // are mostly a mount's changes made during the outage: its journal replay
  // registers them (as the same files, with their history). Walking them
  // first would register them a second time, under new ids. They wait until
  // REPLAY_GRACE_MS after the last sign of the outage.
  let walkHoldUntil = 0;
  const holdWalks = () => {
    walkHoldUntil = Math.max(walkHoldUntil, Date.now() + REPLAY_GRACE_MS);
  };

  const schedule = (delay = debounceMs) => {
    wanted = true;
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      wake?.();
    }, delay);
  };

  const listenAll = async (): Promise<void> => {
    for (const channel of [WORK_CHANNEL, META_CHANNEL]) {
      handles.push(
        await store.listen(channel, () => schedule(), {
          onReconnect: () => {
            log.info({ channel }, 'watch: database back; catching up');
            holdWalks();
            schedule();
          },
        }),
      );
    }
  };
  // the database may be down when the daemon starts: keep trying
  for (let attempt = 0; !ctx.signal?.aborted; attempt++) {
    try {
      await listenAll();
      break;
    } catch (err) {
      await Promise.all(handles.splice(0).map((h) => h.close()));
      log.warn({ err: (err as Error).message }, 'watch: cannot LISTEN yet; retrying');
      await sleep(Math.min(30_000, 500 * 2 ** attempt), ctx.signal);
    }
  }

  if (opts.watchFiles !== false) {
    watcher = chokidarWatch(ctx.root, {
      ignoreInitial: true,
      // reserved names (temp files, .ggfs-tmp, quarantine) at any depth below the root
      ignored: (p: string) => path.relative(ctx.root, p).split(path.sep).some((part) => isReservedName(part)),
      awaitWriteFinish: { stabilityThreshold: 1000, pollInterval: 100 },
    });
    const onFile = (p: string) => {
      touched.add(p);
      schedule();
    };
    watcher.on('add', onFile).on('change', onFile).on('error', (err) => log.warn({ err: String(err) }, 'watch: file watcher error'));
    // files placed before the watcher has scanned the tree would be taken as already there:
    // let it finish its scan first (bounded: on a huge tree the periodic passes must not wait forever)
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        ctx.signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, 60_000);
      watcher!.once('ready', done);
      ctx.signal?.addEventListener('abort', done, { once: true });
    });
  }

  const periodic = setInterval(() => schedule(0), intervalMs);
  try {
    while (!ctx.signal?.aborted) {
      if (!wanted) {
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          wake = () => {
            ctx.signal?.removeEventListener('abort', onAbort);
            resolve();
          };
          ctx.signal?.addEventListener('abort', onAbort, { once: true });
        });
        wake = null;
        continue;
      }
      wanted = false;
      running = true;
      try {
        if (touched.size && Date.now() < walkHoldUntil) {
          schedule(walkHoldUntil - Date.now()); // mounts replay their journals first
        } else if (touched.size) {
          const paths = [...touched];
          touched.clear();
          for (const p of paths) {
            const rel = path.relative(ctx.root, p);
            if (rel.startsWith('..')) continue;
            try {
              await walk(ctx, { subpath: '/' + rel.split(path.sep).join('/') });
            } catch (err) {
              // gone again (renamed or deleted: what is there now comes as its own event); never the whole pass
              if ((err as { code?: string }).code === 'NOT_FOUND') continue;
              if (isConnectionError(err)) {
                for (const q of paths) touched.add(q); // looked at again once the database answers
                throw err;
              }
              log.warn({ path: p, err: (err as Error).message }, 'watch: walk of a changed file failed');
            }
          }
        }
        const s = await replicate(ctx);
        if (s.locked) {
          schedule(5000); // cron's run holds the lock: try again shortly
        } else {
          if (s.copied || s.dropped || s.deletesApplied || s.renamesApplied || s.failed) log.info(formatReplicateSummary(s));
          if (s.budgetHit) schedule(0);
          else if (s.deferred) schedule(1500); // a mount held some paths: their turn comes right after it
          opts.onPass?.(s);
        }
      } catch (err) {
        if (isConnectionError(err)) holdWalks();
        log.error({ err: (err as Error).message }, 'watch: pass failed; retrying');
        await writeHeartbeat(ctx).catch(() => undefined);
        schedule(5000);
      } finally {
        running = false;
      }
    }
  } finally {
    clearInterval(periodic);
    if (timer) clearTimeout(timer);
    await watcher?.close();
    await Promise.all(handles.map((h) => h.close()));
    void running;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
