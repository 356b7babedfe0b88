/**
 * The GeoGridFS side of the bench: three node folders, an embedded
 * PostgreSQL under the scratch folder, config files for each role, the mount
 * process, and direct SQL for generated metadata loads. Everything it starts
 * is registered for clean-up.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { check, childEnv, GEOGRIDFS_BIN, run, startDaemon, stopDaemon, sleep, type Daemon, type RunOptions, type RunResult } from './proc.js';
import { mountsUnder, onCleanup, unmount } from './cleanup.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { MetaStore } from '../../src/meta/store.js';

/** GeoGridFS features the bench uses, and whether this build has them. */
export interface Features {
  mount: boolean;
  walk: boolean;
  replicate: boolean;
  api: boolean;
  backup: boolean;
}

const FEATURE_COMMAND: Record<keyof Features, string> = {
  mount: 'mount',
  walk: 'replicator walk',
  replicate: 'replicator replicate',
  api: 'api',
  backup: 'backup replicate',
};


/** A child process of `pid` that is itself a `geogridfs mount` (a re-executed mount), or null. */
async function childOf(pid: number): Promise<number | null> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const c of text.trim().split(/\s+/).filter(Boolean)) {
    const cmdline = (await readFile(`/proc/${c}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (cmdline.some((a) => a.endsWith('geogridfs')) && cmdline.includes('mount')) return Number(c);
  }
  return null;
}

export const NODE_NAMES = ['n1', 'n2', 'n3'] as const;

export class GeoGridFS {
  readonly root: string;
  readonly dataDir: string;
  readonly nodes: Record<string, string>;
  readonly mountPoint: string;
  readonly configDir: string;
  features: Features = { mount: false, walk: false, replicate: false, api: false, backup: false };
  apiPort = 0;
  private mountDaemon: Daemon | null = null;
  private unmountNow: (() => Promise<void>) | null = null;
  private storeP: Promise<MetaStore> | null = null;
  private mounts = 0;
  /** when set, every geogridfs process the bench starts writes a V8 CPU profile under <profileDir>/<label>/ */
  profileDir: string | null = null;
  /** why the mount is unavailable although the command exists */
  mountError: string | null = null;

  constructor(scratch: string) {
    this.root = path.join(scratch, 'geogridfs');
    this.dataDir = path.join(this.root, 'data');
    this.nodes = Object.fromEntries(NODE_NAMES.map((n) => [n, path.join(this.root, 'nodes', n)]));
    this.mountPoint = path.join(this.root, 'mnt');
    this.configDir = path.join(this.root, 'config');
  }

  /** Why a feature cannot be measured ("not implemented: ..." or "failed: ..."), or null when it can. */
  unavailable(...needs: (keyof Features)[]): string | null {
    for (const f of needs) {
      if (f === 'mount' && this.mountError) return `failed: mount did not come up: ${this.mountError}`.slice(0, 160);
      if (!this.features[f]) return `not implemented: no \`geogridfs ${FEATURE_COMMAND[f]}\` in this build`;
    }
    return null;
  }

  /** The config object every role shares; `extra` adds/overrides top-level keys. */
  configBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      dataDir: this.dataDir,
      nodes: this.nodes,
      classes: [
        { name: 'replicated', pattern: 'rep/**', replicaTarget: 2, backupTarget: 0 },
        { name: 'backed-up', pattern: 'bk/**', replicaTarget: 1, backupTarget: 1 },
        { name: 'hourly', pattern: 'hourly/**', replicaTarget: 1, backupTarget: 1 },
        { name: 'default', pattern: '**', replicaTarget: 1, backupTarget: 0 },
      ],
      api: { host: '127.0.0.1', port: this.apiPort },
      replicator: { minFreeBytes: 0, budgetSec: 3600 },
      log: { level: 'warn', format: 'json' },
      ...extra,
    };
  }

  /** Write config file `name`.ts and return its path. */
  async writeConfig(name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const file = path.join(this.configDir, `${name}.ts`);
    await writeFile(file, `// written by the bench\nconst config = ${JSON.stringify(this.configBody(extra), null, 2)};\nexport default config;\n`);
    return file;
  }

  configPath(name = 'main'): string {
    return path.join(this.configDir, `${name}.ts`);
  }

  /** Node arguments that start `geogridfs ARGS` (with --cpu-prof when profiling; `label` names its profile folder). */
  argv(label: string, args: string[]): string[] {
    const prof = this.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(this.profileDir, label)}`] : [];
    return [...prof, GEOGRIDFS_BIN, ...args];
  }

  /** Run `geogridfs ARGS --config <name>`. */
  cli(args: string[], config = 'main', opts: RunOptions = {}): Promise<RunResult> {
    return run(process.execPath, this.argv(args.slice(0, 2).join('-'), [...args, '--config', this.configPath(config)]), { env: childEnv(), timeoutMs: 600_000, ...opts });
  }

  /** Run `geogridfs ARGS --config <name>` as a timed workload step: its wall-clock milliseconds (throws on failure). */
  async timedCli(args: string[], config = 'main'): Promise<{ ms: number; stdout: string }> {
    const r = check(await this.cli(args, config, { timeoutMs: 900_000 }), `geogridfs ${args.join(' ')}`);
    return { ms: r.wallMs, stdout: r.stdout };
  }

  async mustCli(args: string[], config = 'main', opts: RunOptions = {}): Promise<RunResult> {
    return check(await this.cli(args, config, opts), `geogridfs ${args.join(' ')}`);
  }

  /** Does this build have the command (its --help succeeds)? */
  async hasCommand(words: string[]): Promise<boolean> {
    const r = await run(process.execPath, [GEOGRIDFS_BIN, ...words, '--help'], { env: childEnv(), timeoutMs: 60_000 });
    // an unknown command prints the general help (also with exit 0): look for the command's own usage line
    return r.code === 0 && r.stdout.trimStart().startsWith(`geogridfs ${words.join(' ')}`);
  }

  /** Create folders and configs, start and migrate the database, register the nodes, detect features. */
  async setup(apiPort: number): Promise<void> {
    this.apiPort = apiPort;
    // PostgreSQL runs as an unprivileged user when we are root: it must be able to enter these
    for (const d of [this.root, this.dataDir, this.configDir, path.join(this.root, 'nodes'), ...Object.values(this.nodes), this.mountPoint]) {
      await mkdir(d, { recursive: true, mode: 0o755 });
      await chmod(d, 0o755);
    }
    await this.writeConfig('main');
    for (const n of NODE_NAMES) await this.writeConfig(n, { host: { node: n } });
    onCleanup('stop embedded PostgreSQL', async () => {
      await this.closeStore();
      const r = await this.cli(['db', 'stop'], 'main', { timeoutMs: 90_000 });
      // the CLI failing (a broken build) must not leave the server running: stop it directly
      if (r.code !== 0 && (await stopEmbedded(this.dataDir).then(() => false, () => true))) throw new Error(`geogridfs db stop: ${r.stderr.trim()}`);
    });
    await this.mustCli(['db', 'migrate']);
    for (const n of NODE_NAMES) await this.mustCli(['node', 'add', n]);
    const [mount, walk, replicate, api, backup] = await Promise.all([
      this.hasCommand(['mount']),
      this.hasCommand(['replicator', 'walk']),
      this.hasCommand(['replicator', 'replicate']),
      this.hasCommand(['api']),
      this.hasCommand(['backup', 'replicate']),
    ]);
    this.features = { mount, walk, replicate, api, backup };
  }

  /** A pool on the bench's database (for generated loads and EXPLAIN). */
  store(): Promise<MetaStore> {
    this.storeP ??= ensureEmbedded(this.dataDir).then((info) => MetaStore.connect(info.url, { poolSize: 2, statementTimeoutMs: 3_600_000 }));
    return this.storeP;
  }

  async closeStore(): Promise<void> {
    if (!this.storeP) return;
    const p = this.storeP;
    this.storeP = null;
    await (await p.catch(() => null))?.close();
  }

  async postgresVersion(): Promise<string> {
    const rows = await (await this.store()).query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  }

  /**
   * pid of the process serving the mount (for RSS), or null. The mount
   * re-executes itself (thread pool size, V8 flags): the deepest child.
   */
  async mountPid(): Promise<number | null> {
    let pid = this.mountDaemon?.child.pid ?? null;
    for (let depth = 0; pid !== null && depth < 3; depth++) {
      const child = await childOf(pid);
      if (child === null) break;
      pid = child;
    }
    return pid;
  }

  /** Start `geogridfs mount -f` (a foreground child: its pid is the mount's) and wait until the kernel shows the mount. */
  async mount(config = 'main', extraArgs: string[] = []): Promise<void> {
    if (this.mountDaemon) throw new Error('already mounted');
    const logFile = path.join(this.root, `mount-${++this.mounts}.log`);
    // started as a user starts it: the mount re-executes itself with its thread pool and V8 flags (mountPid follows it)
    const d = startDaemon(process.execPath, this.argv('mount', ['mount', '-f', this.mountPoint, '--config', this.configPath(config), ...extraArgs]), {
      env: childEnv(),
      logFile,
    });
    this.mountDaemon = d;
    this.unmountNow = onCleanup('unmount GeoGridFS', () => this.stopMount());
    const deadline = Date.now() + 60_000;
    for (;;) {
      if ((await mountsUnder(this.mountPoint)).includes(this.mountPoint)) break;
      if (d.child.exitCode !== null || d.child.signalCode !== null || Date.now() > deadline) {
        const out = d.output().trim().split('\n').slice(-15).join('\n');
        await this.unmount();
        throw new Error(`geogridfs mount did not come up (exit ${d.child.exitCode ?? d.child.signalCode ?? 'timeout'}):\n${out}`);
      }
      await sleep(100);
    }
  }

  private async stopMount(): Promise<void> {
    const d = this.mountDaemon;
    this.mountDaemon = null;
    if (d) {
      // SIGTERM lets the mount flush and unmount itself; fusermount -uz is the fallback
      await stopDaemon(d, 15_000);
    }
    await unmount(this.mountPoint);
  }

  async unmount(): Promise<void> {
    const f = this.unmountNow;
    this.unmountNow = null;
    if (f) await f();
    else await this.stopMount();
  }

  /** The mount's status line (kill -USR2: memory split, cache sizes), or null when it gives none within 3 s. */
  async mountStatus(): Promise<Record<string, any> | null> {
    const pid = await this.mountPid();
    if (pid === null || !this.mountDaemon) return null;
    const seen = (this.mountDaemon.output().match(/"msg":"status"/g) ?? []).length;
    process.kill(pid, 'SIGUSR2');
    for (let i = 0; i < 30; i++) {
      await sleep(100);
      const lines = this.mountDaemon.output().split('\n').filter((l) => l.includes('"msg":"status"'));
      if (lines.length > seen) {
        try {
          return JSON.parse(lines.at(-1)!) as Record<string, any>;
        } catch {
          return null;
        }
      }
    }
    return null;
  }

  /** The mount's recent output (for error messages). */
  mountOutput(): string {
    return this.mountDaemon?.output() ?? '';
  }
}
