/**
 * The API as a service of `geogridfs up`: its own small pool, listening on
 * api.host:api.port. A port already in use does not stop the local grid:
 * the API is then reported as not started.
 */
import type { Config } from '../config/schema.js';
import { MetaStore } from '../meta/store.js';
import type { Logger } from '../util/log.js';
import { buildApiServer } from './server.js';

export async function startApiService(config: Config, log: Logger): Promise<{ stop(): Promise<void>; describe: string }> {
  const store = await MetaStore.open(config, { log, applicationName: 'geogridfs-api', poolSize: 4 });
  try {
    const server = await buildApiServer({ store, config, log });
    try {
      const url = await server.listen();
      return {
        describe: `${url}/ (dashboard)`,
        stop: async () => {
          await server.close();
          await store.close();
        },
      };
    } catch (err) {
      await server.close().catch(() => undefined);
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      log.warn({ port: config.api.port }, 'API not started: the port is in use (set api.port)');
      await store.close();
      return { describe: `not started: port ${config.api.port} in use`, stop: async () => undefined };
    }
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}
