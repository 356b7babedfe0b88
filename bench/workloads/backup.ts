/**
 * Backup workloads, against a real `geogridfs api` on loopback:
 *
 * - first pull: a fresh backup host (`geogridfs backup replicate`, new
 *   backup node and empty folder) pulling a mixed-size set vs `curl` of the
 *   same files from a plain static HTTP server over the bare folder and over
 *   mergerfs (4 transfers at once like the agent, then `sync -f`: the agent
 *   fsyncs every file);
 * - hourly run with nothing new, with many files registered and held: its
 *   absolute time, vs `rsync -a --dry-run` of the same tree (cold cache for both).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { RoundPlanner, failReason, io, orderFor, Samples, timed, type BenchContext } from '../lib/context.js';
import { onCleanup } from '../lib/cleanup.js';
import { BENCH_DIST, check, childEnv, dropCaches, run, sleep, startDaemon, stopDaemon, type Daemon } from '../lib/proc.js';
import { mixedSpec } from '../lib/sizes.js';
import { TARGETS, type TargetId, type WorkloadResult } from '../lib/types.js';
import { fmtSize, treeBytes, walkN1, writeSpec } from './replicate.js';

async function waitForPort(port: number, d: Daemon, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (d.child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start listening on ${port}:\n${d.output().trim().split('\n').slice(-10).join('\n')}`);
    await sleep(100);
  }
}

let api: { daemon: Daemon; stop: () => Promise<void> } | null = null;

/** A backup host that completed the first pull (its folder and state are kept for the hourly workload). */
let pulledHost: { config: string; folder: string } | null = null;

/** Start `geogridfs api` once (stopped at clean-up). */
async function ensureApi(ctx: BenchContext): Promise<string> {
  const url = `http://127.0.0.1:${ctx.ggfs.apiPort}`;
  if (api) return url;
  const daemon = startDaemon(process.execPath, ctx.ggfs.argv('api', ['api', '--config', ctx.ggfs.configPath('main')]), {
    env: childEnv(),
    logFile: path.join(ctx.ggfs.root, 'api.log'),
  });
  const stop = onCleanup('stop geogridfs api', async () => {
    await stopDaemon(daemon, 10_000);
    api = null;
  });
  api = { daemon, stop };
  await waitForPort(ctx.ggfs.apiPort, daemon, 'geogridfs api');
  return url;
}

/** Register a backup node and write its config; returns the config name and folder. */
async function backupHost(ctx: BenchContext, name: string, apiUrl: string): Promise<{ config: string; folder: string }> {
  const r = await ctx.ggfs.mustCli(['backup-node', 'add', name]);
  const token = r.stdout.trim().split('\n').pop()!.trim();
  const folder = path.join(ctx.scratch, 'backup-hosts', name);
  await mkdir(folder, { recursive: true, mode: 0o755 });
  await ctx.ggfs.writeConfig(name, {
    dataDir: path.join(ctx.scratch, 'backup-hosts', `${name}.state`),
    backup: { apiUrls: [apiUrl], token, folder, minFreeBytes: 0, deletion: 'keep', concurrency: 4 },
  });
  return { config: name, folder };
}

/** A static HTTP server over `root` (the curl baseline); stopped at clean-up. */
async function staticServer(root: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const d = startDaemon(process.execPath, [path.join(BENCH_DIST, 'tools', 'static-server.js'), root], { env: childEnv() });
  const deadline = Date.now() + 20_000;
  while (!/"port":\d+/.test(d.output())) {
    if (d.child.exitCode !== null || Date.now() > deadline) throw new Error(`static server did not start: ${d.output()}`);
    await sleep(50);
  }
  const port = Number(/"port":(\d+)/.exec(d.output())![1]);
  const stop = onCleanup(`stop static server ${root}`, () => stopDaemon(d, 5000));
  return { port, stop };
}

export async function backupPull(ctx: BenchContext): Promise<WorkloadResult[]> {
  const rounds = Math.min(ctx.sizes.mixedRounds, ctx.sizes.rounds);
  const s = new Samples();
  const na = ctx.ggfs.unavailable('walk', 'api', 'backup');
  if (na) s.fail(['pull'], 'geogridfs', na);
  const spec = await writeSpec(ctx, 'bk', mixedSpec(ctx.sizes.mixedBytes, 'bk'));
  // the same bytes on the bare folder, a mergerfs branch, and node n1 (registered by a walk)
  await io(['mktree', spec.file, ctx.bare, ctx.mergerfs.branches[0]!, ...(na ? [] : [ctx.ggfs.nodes.n1!])]);
  let apiUrl = '';
  if (!na) {
    try {
      await walkN1(ctx, '/bk');
      apiUrl = await ensureApi(ctx);
    } catch (err) {
      s.fail(['pull'], 'geogridfs', failReason(err));
    }
  }
  const servers: Partial<Record<TargetId, { port: number; stop: () => Promise<void> }>> = {
    bare: await staticServer(ctx.bare),
    mergerfs: await staticServer(ctx.mergerfs.mount),
  };
  const rels = readFile(spec.file, 'utf8').then((t) => t.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!));
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['backup-pull'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && (na || !apiUrl)) continue;
      ctx.log(`  backup first pull round ${r + 1}/${rounds} on ${t} (${spec.files} files, ${fmtSize(spec.bytes)})`);
      try {
        if (t === 'geogridfs') {
          const host = await backupHost(ctx, `pull-r${r}`, apiUrl);
          await dropCaches();
          s.add('pull', t, (await ctx.ggfs.timedCli(['backup', 'replicate', '-q'], host.config)).ms / 1000);
          const got = await treeBytes(path.join(host.folder, 'bk'));
          if (got.bytes !== spec.bytes || got.files !== spec.files) {
            await rm(host.folder, { recursive: true, force: true });
            throw new Error(`backup pulled ${got.files} files / ${got.bytes} bytes of ${spec.files} / ${spec.bytes}`);
          }
          // the last host that pulled everything is the hourly workload's host
          if (pulledHost) await rm(pulledHost.folder, { recursive: true, force: true });
          pulledHost = host;
        } else {
          const dst = path.join(ctx.scratch, 'curl', `${t}-r${r}`);
          await mkdir(dst, { recursive: true });
          const cfg = path.join(ctx.scratch, `curl-${t}-r${r}.cfg`);
          const port = servers[t]!.port;
          await writeFile(cfg, (await rels).map((rel) => `url = "http://127.0.0.1:${port}/${rel}"\noutput = "${path.join(dst, rel)}"\n`).join(''));
          await dropCaches();
          s.add('pull', t, (await timed('sh', ['-c', 'curl -fsS --create-dirs --parallel --parallel-max 4 -K "$1" && sync -f "$2"', 'sh', cfg, dst])) / 1000);
          const got = await treeBytes(dst);
          await rm(dst, { recursive: true, force: true });
          await rm(cfg, { force: true });
          if (got.bytes !== spec.bytes) throw new Error(`curl fetched ${got.bytes} of ${spec.bytes} bytes`);
        }
      } catch (err) {
        s.fail(['pull'], t, failReason(err));
      }
      endRound();
    }
  }
  await servers.bare!.stop();
  await servers.mergerfs!.stop();
  await rm(path.join(ctx.mergerfs.branches[0]!, 'bk'), { recursive: true, force: true });
  // the bare copy stays: the hourly host is seeded from it
  return [
    {
      id: 'backup-pull',
      title: `backup first pull ${fmtSize(spec.bytes)} (${spec.files} files) vs curl`,
      unit: 's',
      goal: { kind: 'speed', min: 0.8 },
      applies: [...TARGETS],
      tools: { bare: 'curl --parallel-max 4 from a static server + sync -f', mergerfs: 'curl from a static server over mergerfs + sync -f', geogridfs: 'geogridfs backup replicate (fresh host)' },
      values: s.values('pull', TARGETS),
    },
  ];
}

const HOURLY_TEXT = 'geogridfs bench: a file held by the backup host\n';
const PER_DIR = 1000;

/** Register `count` files /hourly/dNNNN/fNNNNNNN (content HOURLY_TEXT) by a bulk INSERT. */
async function registerHourly(ctx: BenchContext, count: number): Promise<void> {
  const store = await ctx.ggfs.store();
  const checksum = createHash('sha256').update(HOURLY_TEXT).digest('hex');
  const size = Buffer.byteLength(HOURLY_TEXT);
  const nowUs = Date.now() * 1000;
  const folders = Math.ceil(count / PER_DIR);
  await store.txn(async (tx) => {
    await tx.query(
      `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us) VALUES ('/hourly', (SELECT id FROM folders WHERE path = '/'), 493, 0, 0, $1, $1)`,
      [nowUs],
    );
    await tx.query(
      `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us)
       SELECT '/hourly/d' || lpad(i::text, 4, '0'), (SELECT id FROM folders WHERE path = '/hourly'), 493, 0, 0, $1, $1 FROM generate_series(0, $2 - 1) i`,
      [nowUs, folders],
    );
    await tx.query(
      `INSERT INTO files (path, folder_id, size, mode, atime_us, mtime_us, ctime_us, checksum, class, replica_target, backup_target)
       SELECT '/hourly/d' || lpad((i / $5)::text, 4, '0') || '/f' || lpad(i::text, 7, '0'),
              (SELECT id FROM folders WHERE path = '/hourly/d' || lpad((i / $5)::text, 4, '0')),
              $2, 420, $1, $1, $1, $3, 'hourly', 1, 1
         FROM generate_series(0, $4 - 1) i`,
      [nowUs, size, checksum, count, PER_DIR],
    );
  });
  await store.query('ANALYZE files');
  await store.query('ANALYZE folders');
}

export async function backupHourly(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { hourlyFiles: n, rounds } = ctx.sizes;
  const s = new Samples();
  const na = ctx.ggfs.unavailable('api', 'backup');
  if (na) s.fail(['hourly'], 'geogridfs', na);
  // the tree: on the bare folder, copied (same mtimes) to the rsync destination and to a mergerfs branch
  const src = path.join(ctx.bare, 'hourly');
  const dst = path.join(ctx.scratch, 'rsync-dst');
  await io(['mkflat', src, String(n), String(PER_DIR), HOURLY_TEXT]);
  await mkdir(dst, { recursive: true });
  check(await run('cp', ['-a', src, dst]), 'cp -a (rsync destination)');
  check(await run('cp', ['-a', src, ctx.mergerfs.branches[0]!]), 'cp -a (mergerfs branch)');
  let config: string | null = null;
  let setupNote = '';
  if (!na) {
    try {
      const apiUrl = await ensureApi(ctx);
      const t0 = Date.now();
      await registerHourly(ctx, n);
      // the host that did the first pull also gets the hourly tree (copied, same mtimes) and
      // registers it with `backup walk`; without one, a new host gets both trees
      let host = pulledHost;
      if (!host) {
        host = await backupHost(ctx, 'hourly', apiUrl);
        if (existsSync(path.join(ctx.bare, 'bk'))) check(await run('cp', ['-al', path.join(ctx.bare, 'bk'), host.folder]), 'cp -al bk');
      }
      check(await run('cp', ['-al', src, host.folder]), 'cp -al (backup host)');
      const w = await ctx.ggfs.mustCli(['backup', 'walk', '-q', '-p', pulledHost ? path.join(host.folder, 'hourly') : host.folder], host.config);
      const first = await ctx.ggfs.mustCli(['backup', 'replicate', '-q'], host.config);
      setupNote = `host ${host.config}; set-up (bulk INSERT of ${n} files, \`backup walk\`, first \`backup replicate\`) took ${Math.round((Date.now() - t0) / 1000)} s; walk: ${w.stdout.trim().split('\n').pop()}; first run: ${first.stdout.trim().split('\n').pop()}`;
      config = host.config;
    } catch (err) {
      s.fail(['hourly'], 'geogridfs', failReason(err));
    }
  }
  let lastLine = '';
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['backup-hourly'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && (na || !config)) continue;
      ctx.log(`  backup hourly round ${r + 1}/${rounds} on ${t} (${n} files)`);
      try {
        await dropCaches();
        if (t === 'geogridfs') {
          const res = await ctx.ggfs.timedCli(['backup', 'replicate', '-q'], config!);
          lastLine = res.stdout.trim().split('\n').pop() ?? '';
          s.add('hourly', t, res.ms / 1000);
        } else {
          const from = t === 'bare' ? src : path.join(ctx.mergerfs.mount, 'hourly');
          s.add('hourly', t, (await timed('rsync', ['-a', '--dry-run', from + '/', path.join(dst, 'hourly') + '/'], { discardStdout: true })) / 1000);
        }
      } catch (err) {
        s.fail(['hourly'], t, failReason(err));
      }
      endRound();
    }
  }
  await rm(dst, { recursive: true, force: true });
  const k = n >= 1000 ? `${n / 1000}k` : String(n);
  return [
    {
      id: 'backup-hourly',
      title: `backup hourly run, nothing new, ${k} files held, vs rsync -a --dry-run`,
      unit: 's',
      goal: { kind: 'hourly', maxSeconds: 1, minSpeed: 10 },
      applies: [...TARGETS],
      tools: { bare: 'rsync -a --dry-run (bare -> copy)', mergerfs: 'rsync -a --dry-run (mergerfs -> copy)', geogridfs: 'geogridfs backup replicate' },
      values: s.values('hourly', TARGETS),
      ...(setupNote ? { note: `${setupNote}; timed runs said: ${lastLine}` } : {}),
    },
  ];
}
