/**
 * `geogridfs api [--port N] [--host ADDR]` — the central HTTP API and the
 * dashboard, until SIGINT/SIGTERM.
 */
import { defineCommand } from './command.js';
import { print, withStore, type GlobalArgs } from './context.js';
import { GeoError } from '../util/errors.js';

export const apiCommand = defineCommand<GlobalArgs & { port?: number; host?: string }>({
  command: 'api',
  describe: 'serve the HTTP API for backup hosts and the dashboard (api.* in config.ts)',
  builder: (y) =>
    y
      .option('port', { type: 'number', describe: 'listen port (default api.port)' })
      .option('host', { type: 'string', describe: 'listen address (default api.host)' })
      .example('$0 api', 'serve on api.host:api.port; dashboard at http://127.0.0.1:8740/')
      .example('$0 api --host 0.0.0.0 --port 8443', 'serve on every interface (configure api.tls or a proxy)'),
  handler: async (args, io) =>
    withStore(
      args,
      io,
      async (store, config, log) => {
        if (args.port !== undefined && (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535)) throw new GeoError('USAGE', '--port must be 0-65535');
        // loaded here, not at CLI start: other commands (cron runs) do not pay for fastify
        const { buildApiServer } = await import('../api/server.js');
        const server = await buildApiServer({ store, config, log });
        const url = await server.listen(args.port, args.host);
        if (!config.api.tls && !['127.0.0.1', '::1', 'localhost'].includes(args.host ?? config.api.host)) {
          log.warn('serving plain HTTP on a non-loopback address: configure api.tls or put a TLS proxy in front');
        }
        print(io, `geogridfs api listening on ${url} (dashboard at ${url}/)`);
        await new Promise<void>((resolve) => {
          if (!io.signal) return; // no signal (in-process): serve until the process exits
          if (io.signal.aborted) return resolve();
          io.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await server.close();
        return 0;
      },
      { name: 'api' },
    ),
});
