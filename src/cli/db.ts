/**
 * `geogridfs db migrate|status|start|stop`
 */
import type { Argv } from 'yargs';
import { defineCommand } from './command.js';
import { configFor, print, withStore, type CliIo, type GlobalArgs } from './context.js';
import { migrate, migrationStatus } from '../meta/migrate.js';
import { ensureEmbedded, stopEmbedded, embeddedPaths, runningServer } from '../embedded/server.js';
import { redactUrl } from '../meta/store.js';

const migrateCmd = defineCommand<GlobalArgs>({
  command: 'migrate',
  describe: 'apply the pending sql/NNNN_*.sql migrations (idempotent)',
  builder: (y) => y.example('$0 db migrate', 'create or upgrade the schema'),
  handler: async (args, io) =>
    withStore(
      args,
      io,
      async (store) => {
        const done = await migrate(store);
        print(io, done.length ? `applied ${done.length} migration(s): ${done.join(', ')}` : 'schema is up to date');
        return 0;
      },
      { checkSchema: false, name: 'db' },
    ),
});

const statusCmd = defineCommand<GlobalArgs & { json?: boolean }>({
  command: 'status',
  describe: 'show the database in use and the schema version',
  builder: (y) => y.option('json', { type: 'boolean', describe: 'machine-readable output' }).example('$0 db status', ''),
  handler: async (args, io) =>
    withStore(
      args,
      io,
      async (store, config) => {
        const s = await migrationStatus(store);
        const info = {
          database: config.database.url ? redactUrl(config.database.url) : `embedded (${embeddedPaths(config.dataDir).cluster})`,
          schemaVersion: s.dbVersion,
          codeVersion: s.codeVersion,
          pending: s.pending.map((m) => m.name),
        };
        if (args.json) print(io, JSON.stringify(info, null, 2));
        else print(io, `database: ${info.database}\nschema: version ${info.schemaVersion} of ${info.codeVersion}${info.pending.length ? ` (pending: ${info.pending.join(', ')}; run \`geogridfs db migrate\`)` : ' (up to date)'}`);
        return s.dbVersion > s.codeVersion ? 1 : 0;
      },
      { checkSchema: false, name: 'db' },
    ),
});

const startCmd = defineCommand<GlobalArgs>({
  command: 'start',
  describe: 'start the embedded PostgreSQL server (other commands start it when needed)',
  builder: (y) => y.example('$0 db start', ''),
  handler: async (args, io: CliIo) => {
    const config = await configFor(args, io);
    if (config.database.url) {
      print(io, `a database URL is configured (${redactUrl(config.database.url)}): no embedded server is used`);
      return 1;
    }
    const info = await ensureEmbedded(config.dataDir);
    print(io, `embedded PostgreSQL ${info.started ? 'started' : 'already running'} on 127.0.0.1:${info.port} (${embeddedPaths(config.dataDir).cluster})`);
    return 0;
  },
});

const stopCmd = defineCommand<GlobalArgs>({
  command: 'stop',
  describe: 'stop the embedded PostgreSQL server of this host',
  builder: (y) => y.example('$0 db stop', ''),
  handler: async (args, io) => {
    const config = await configFor(args, io);
    if (config.database.url) {
      print(io, `a database URL is configured (${redactUrl(config.database.url)}): geogridfs never stops an external server`);
      return 1;
    }
    const paths = embeddedPaths(config.dataDir);
    const was = await runningServer(paths);
    const stopped = await stopEmbedded(config.dataDir);
    print(io, stopped ? `embedded PostgreSQL stopped (pid ${was?.pid})` : 'embedded PostgreSQL was not running');
    return 0;
  },
});

export const dbCommand = defineCommand<GlobalArgs>({
  command: 'db <command>',
  describe: 'metadata database: migrate, status, start, stop',
  builder: (y: Argv<GlobalArgs>) => y.example('$0 db migrate', 'create or upgrade the schema').example('$0 db stop', 'stop the embedded server'),
  subcommands: [migrateCmd, statusCmd, startCmd, stopCmd],
});
