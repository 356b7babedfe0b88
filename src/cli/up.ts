/**
 * `geogridfs up [MOUNTPOINT]`: an all-in-one local grid for a first try.
 *
 * Starts (in order) the embedded PostgreSQL (or uses the configured URL),
 * applies the migrations, makes three node folders under <dataDir>/nodes
 * (unless config.ts names nodes) and registers them, then runs every service
 * of UP_SERVICES (the mount today; the replicators and the API add
 * themselves there) and waits. Ctrl-C stops the services in reverse order,
 * and the embedded server if `up` started it.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import type { Config } from '../config/schema.js';
import { ensureEmbedded, stopEmbedded } from '../embedded/server.js';
import { MetaStore } from '../meta/store.js';
import { migrate } from '../meta/migrate.js';
import { ensureNodes } from '../meta/nodes.js';
import type { Logger } from '../util/log.js';
import { defineCommand } from './command.js';
import { configFor, loggerFor, print, type CliIo, type GlobalArgs } from './context.js';
import { guardProcess, rerunWithThreadPool, startMount, threadPoolReady, untilStopped } from './mount.js';
import { startReplicators } from '../replicator/daemon.js';

/** What a service of `up` gets. */
export interface UpContext {
  config: Config;
  store: MetaStore;
  log: Logger;
  io: CliIo;
  /** the mount point (absolute) */
  mountpoint: string;
}

/** A long-running part of the local grid: started in order, stopped in reverse. */
export interface UpService {
  name: string;
  start(ctx: UpContext): Promise<{ stop(): Promise<void>; describe?: string; gone?: Promise<void> }>;
}

/**
 * The services `up` runs, in start order. Other parts of the system add
 * theirs here (one entry each), e.g. one replicator per node and the API.
 */
export const UP_SERVICES: UpService[] = [
  {
    name: 'mount',
    start: async (ctx) => {
      const m = await startMount(ctx.config, ctx.mountpoint, ctx.log.child({ service: 'mount' }), [], ctx.store);
      return { stop: () => m.stop(), describe: `${ctx.mountpoint} (${m.fs.nodes.map((n) => n.name).join(', ')})`, gone: m.mounted.gone };
    },
  },
  { name: 'replicator', start: (ctx) => startReplicators(ctx.config, ctx.log.child({ service: 'replicator' })) },
  { name: 'api', start: async (ctx) => (await import('../api/service.js')).startApiService(ctx.config, ctx.log.child({ service: 'api' })) },
];

/** The local grid's configuration: three node folders under dataDir unless config.ts names nodes. */
export async function upConfig(config: Config): Promise<Config> {
  if (Object.keys(config.nodes).length > 0) return config;
  const nodes: Record<string, string> = {};
  for (const name of ['node1', 'node2', 'node3']) {
    const dir = path.join(config.dataDir, 'nodes', name);
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    nodes[name] = dir;
  }
  return { ...config, nodes };
}

export const upCommand = defineCommand<GlobalArgs & { mountpoint?: string }>({
  command: 'up [mountpoint]',
  describe: 'run a whole grid locally: embedded PostgreSQL, three node folders, the mount (Ctrl-C stops it all)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('mountpoint', { type: 'string', describe: 'where to mount (default ./mnt/combined)' })
      .example('$0 up', 'grid in ~/.local/share/geogridfs (or /var/lib/geogridfs as root), mounted at ./mnt/combined')
      .example('GEOGRIDFS_DATA_DIR=/tmp/grid $0 up /tmp/grid-mnt', 'a throw-away grid') as unknown as Argv<GlobalArgs>,
  handler: async (args, io) => {
    const config = await upConfig(await configFor(args, io));
    const mountpoint = path.resolve(io.cwd, args.mountpoint ?? path.join('mnt', 'combined'));
    if (!threadPoolReady(config, io.env)) {
      const childArgs = ['up', mountpoint];
      if (config.configFile) childArgs.push('--config', config.configFile);
      if (args.quiet) childArgs.push('--quiet');
      if (args.verbose) childArgs.push('--verbose');
      return rerunWithThreadPool(config, childArgs, io, { background: false });
    }
    const log = loggerFor(config, args, io, 'up');
    guardProcess(log);
    const embedded = config.database.url ? null : await ensureEmbedded(config.dataDir);
    const store = await MetaStore.open(config, { log, applicationName: 'geogridfs-up', poolSize: Math.max(config.database.poolSize, 4) });
    const running: { name: string; stop(): Promise<void> }[] = [];
    const gone: Promise<void>[] = [];
    try {
      const applied = await migrate(store);
      if (applied.length) log.info({ applied }, 'schema migrated');
      await ensureNodes(store, Object.keys(config.nodes));
      const ctx: UpContext = { config, store, log, io, mountpoint };
      const lines: string[] = [];
      for (const svc of UP_SERVICES) {
        const s = await svc.start(ctx);
        running.push({ name: svc.name, stop: s.stop });
        if (s.gone) gone.push(s.gone);
        lines.push(`  ${svc.name.padEnd(10)} ${s.describe ?? 'running'}`);
      }
      print(
        io,
        [
          'geogridfs is up:',
          `  database   ${config.database.url ? 'configured URL' : `embedded PostgreSQL on 127.0.0.1:${embedded!.port} (${config.dataDir}/postgres)`}`,
          ...Object.entries(config.nodes).map(([n, p]) => `  node       ${n} -> ${p}`),
          ...lines,
          'Press Ctrl-C to stop.',
        ].join('\n'),
      );
      await untilStopped(io.signal, gone.length ? Promise.race(gone) : new Promise<void>(() => undefined));
      return 0;
    } finally {
      for (const s of running.reverse()) {
        await s.stop().catch((err: unknown) => log.error({ service: s.name, err }, 'stop failed'));
      }
      await store.close();
      if (embedded?.started) {
        await stopEmbedded(config.dataDir).catch((err: unknown) => log.warn({ err }, 'stopping the embedded PostgreSQL failed'));
      }
      print(io, 'geogridfs stopped');
    }
  },
});
