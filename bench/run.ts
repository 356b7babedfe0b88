/**
 * `npm run bench [-- --quick]`: the side-by-side benchmark of GeoGridFS, mergerfs and
 * the bare folder, on the same disk, in one run.
 *
 *   node dist/bench/run.js [--quick] [--only a,b] [--rounds N] [--out DIR] [--scratch DIR] [--keep] [--cpu-prof DIR]
 *
 * --set SIZE=N overrides one size of bench/lib/sizes.ts (e.g. --set smallCount=2000), for experiments.
 * --cpu-prof DIR: every geogridfs process (mount, walk, replicate, api, backup)
 * writes a V8 CPU profile under DIR/<command>/ (summarise with
 * `node dist/bench/tools/prof-top.js FILE.cpuprofile`); timings then include the profiler's cost.
 *
 * Sets up three node folders with a GeoGridFS mount over them (embedded
 * PostgreSQL under the scratch folder), mergerfs over three identical
 * folders, and a bare folder; runs every workload on each, several rounds;
 * prints a table of medians with the speed ratios GeoGridFS/mergerfs and
 * GeoGridFS/bare and the machine; writes bench/results/latest.{json,md,svg}.
 * Everything it mounts or starts is stopped again, also on SIGINT/SIGTERM or
 * a failure.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { cleanupAll, cleanupOnSignals, mountsUnder, onCleanup, unmount } from './lib/cleanup.js';
import type { BenchContext } from './lib/context.js';
import { GeoGridFS } from './lib/geogridfs.js';
import { machineInfo, type MachineInfo } from './lib/machine.js';
import { REPO_ROOT, run, sleep, startDaemon, stopDaemon } from './lib/proc.js';
import { jsonDoc, machineLine, markdown, svgChart, textTable } from './lib/report.js';
import { FULL, QUICK, type Sizes } from './lib/sizes.js';
import type { WorkloadResult } from './lib/types.js';
import { sequential, smallFiles } from './workloads/posix.js';
import { walkWorkload } from './workloads/walk.js';
import { replicateWorkload } from './workloads/replicate.js';
import { backupPull, backupHourly } from './workloads/backup.js';
import { scaleWorkloads } from './workloads/scale.js';

interface Args {
  quick: boolean;
  only: string[] | null;
  rounds: number | null;
  out: string;
  scratch: string;
  keep: boolean;
  cpuProf: string | null;
  set: [string, number][];
}

/** Workload groups in run order (later ones load more metadata). */
const GROUPS: { id: string; run: (ctx: BenchContext) => Promise<WorkloadResult[]> }[] = [
  // first: a fresh backup host reads the whole change feed, which later workloads lengthen
  { id: 'backup-pull', run: backupPull },
  { id: 'seq', run: sequential },
  { id: 'small', run: smallFiles },
  { id: 'walk', run: walkWorkload },
  { id: 'replicate', run: replicateWorkload },
  { id: 'backup-hourly', run: backupHourly },
  { id: 'scale', run: scaleWorkloads },
];

function usage(): never {
  process.stderr.write(
    'usage: node dist/bench/run.js [--quick] [--only ' + GROUPS.map((g) => g.id).join(',') + '] [--rounds N] [--out DIR] [--scratch DIR] [--keep] [--cpu-prof DIR] [--set SIZE=N]\n',
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: null, rounds: null, out: path.join(REPO_ROOT, 'bench', 'results'), scratch: os.tmpdir(), keep: false, cpuProf: null, set: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => argv[++i] ?? usage();
    if (arg === '--quick') a.quick = true;
    else if (arg === '--keep') a.keep = true;
    else if (arg === '--only') a.only = value().split(',');
    else if (arg === '--rounds') a.rounds = Number(value());
    else if (arg === '--out') a.out = path.resolve(value());
    else if (arg === '--scratch') a.scratch = path.resolve(value());
    else if (arg === '--cpu-prof') a.cpuProf = path.resolve(value());
    else if (arg === '--set') {
      const [k, v] = value().split('=');
      if (!k || !(k in FULL) || typeof FULL[k as keyof Sizes] !== 'number' || !Number.isFinite(Number(v))) usage();
      a.set.push([k, Number(v)]);
    }
    else if (arg === '--help' || arg === '-h') usage();
    else usage();
  }
  if (a.only && a.only.some((o) => !GROUPS.some((g) => g.id === o))) usage();
  return a;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

/** The scratch folder: every part of its path reachable by the PostgreSQL user. */
async function makeScratch(base: string): Promise<string> {
  const parent = path.join(base, 'geogridfs-bench');
  await mkdir(parent, { recursive: true, mode: 0o755 });
  await chmod(parent, 0o755).catch(() => undefined);
  const dir = await mkdtemp(path.join(parent, 'run-'));
  await chmod(dir, 0o755);
  return dir;
}

async function setupMergerfs(scratch: string): Promise<BenchContext['mergerfs']> {
  const root = path.join(scratch, 'mergerfs');
  const branches = ['b1', 'b2', 'b3'].map((b) => path.join(root, b));
  const mount = path.join(root, 'mnt');
  for (const d of [...branches, mount]) await mkdir(d, { recursive: true, mode: 0o755 });
  // foreground child: its pid is ours (memory figure), and it cannot outlive a crashed bench unnoticed
  const d = startDaemon('mergerfs', ['-f', '-o', 'cache.files=off,category.create=mfs,func.getattr=newest,dropcacheonclose=true,fsname=bench-mergerfs', branches.join(':'), mount]);
  onCleanup('unmount mergerfs', async () => {
    await unmount(mount);
    await stopDaemon(d, 5000);
  });
  const deadline = Date.now() + 20_000;
  while (!(await mountsUnder(mount)).includes(mount)) {
    if (d.child.exitCode !== null || Date.now() > deadline) throw new Error(`mergerfs did not mount: ${d.output()}`);
    await sleep(50);
  }
  return { mount, branches, pid: d.child.pid ?? null };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const sizes: Sizes = { ...(args.quick ? QUICK : FULL) };
  if (args.rounds) sizes.rounds = args.rounds;
  for (const [k, v] of args.set) (sizes as unknown as Record<string, number>)[k] = v;
  const started = Date.now();
  cleanupOnSignals();
  const scratch = await makeScratch(args.scratch);
  log(`bench: scratch folder ${scratch}${args.quick ? ' (quick)' : ''}`);
  onCleanup('remove the scratch folder', async () => {
    const left = await mountsUnder(scratch);
    if (left.length) throw new Error(`not removing ${scratch}: still mounted: ${left.join(', ')}`);
    if (!args.keep) await rm(scratch, { recursive: true, force: true });
  });

  const results: WorkloadResult[] = [];
  let machine: MachineInfo | null = null;
  let failure: unknown = null;
  try {
    const bare = path.join(scratch, 'bare');
    await mkdir(bare, { mode: 0o755 });
    const mergerfs = await setupMergerfs(scratch);
    log('bench: mergerfs mounted; setting up GeoGridFS (embedded PostgreSQL, 3 nodes)');
    const ggfs = new GeoGridFS(scratch);
    ggfs.profileDir = args.cpuProf;
    await ggfs.setup(await freePort());
    log(`bench: GeoGridFS features in this build: ${Object.entries(ggfs.features).map(([k, v]) => `${k}=${v ? 'yes' : 'NO'}`).join(' ')}`);
    machine = await machineInfo(scratch, await ggfs.postgresVersion().catch(() => 'unknown'));
    log(`bench: machine: ${machineLine(machine)}`);
    if (ggfs.features.mount) {
      try {
        await ggfs.mount();
        log(`bench: GeoGridFS mounted at ${ggfs.mountPoint}`);
      } catch (err) {
        log(`bench: GeoGridFS mount failed: ${(err as Error).message}`);
        ggfs.mountError = (err as Error).message.split('\n')[0] ?? 'failed';
      }
    }
    const ctx: BenchContext = { quick: args.quick, sizes, scratch, bare, mergerfs, ggfs, log, extraRoundsUntil: started + sizes.extraRoundsWithinSec * 1000 };
    for (const g of GROUPS) {
      if (args.only && !args.only.includes(g.id)) continue;
      const t0 = Date.now();
      log(`bench: ${g.id}`);
      const rs = await g.run(ctx);
      results.push(...rs);
      log(`bench: ${g.id} done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n${textTable(rs)}`);
    }
  } catch (err) {
    failure = err;
    log(`bench: FAILED: ${(err as Error).stack ?? String(err)}`);
  } finally {
    log('bench: cleaning up');
    await cleanupAll(log);
  }
  const totalSec = (Date.now() - started) / 1000;
  if (!machine) machine = await machineInfo(os.tmpdir(), 'unknown');
  machine.loadAverageEnd = +os.loadavg()[0]!.toFixed(2);
  const date = new Date().toISOString();
  const meta = { date, quick: args.quick, rounds: `up to ${sizes.rounds} rounds per target (mixed-size workloads: up to ${Math.min(sizes.mixedRounds, sizes.rounds)})`, totalSec };
  const text = textTable(results);
  process.stdout.write(`\nGeoGridFS bench — ${date}${args.quick ? ' (quick)' : ''}, ${Math.round(totalSec)} s\nmachine: ${machineLine(machine)}\n\n${text}\n\nratios: speed of GeoGridFS relative to the other (its time / GeoGridFS's time); higher is better\n`);
  await mkdir(args.out, { recursive: true });
  const base = args.quick ? 'latest-quick' : 'latest';
  const doc = jsonDoc(results, machine, { ...meta, scratch, sizes, overrides: Object.fromEntries(args.set), failure: failure ? String((failure as Error).message ?? failure) : null });
  await writeFile(path.join(args.out, `${base}.json`), JSON.stringify(doc, null, 2) + '\n');
  await writeFile(path.join(args.out, `${base}.md`), markdown(results, machine, meta));
  await writeFile(path.join(args.out, `${base}.svg`), svgChart(results, `GeoGridFS speed ratios — ${date.slice(0, 10)}${args.quick ? ' (quick)' : ''}`));
  log(`bench: wrote ${path.join(args.out, base)}.{json,md,svg}`);
  void run;
  return failure ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    log(`bench: ${(err as Error).stack ?? String(err)}`);
    await cleanupAll(log);
    process.exit(1);
  },
);
