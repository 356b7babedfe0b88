/**
 * Replicators as in-process daemons, one `watch` per node of the config:
 * used by `geogridfs up` (the all-in-one local grid), where every node folder
 * is local. Each gets its own small pool (a replicate pass holds its node's
 * advisory lock on a connection for its whole length).
 */
import type { Config } from '../config/schema.js';
import { MetaStore } from '../meta/store.js';
import type { Logger } from '../util/log.js';
import { openReplicator } from './context.js';
import { watch } from './watch.js';

export interface RunningReplicators {
  describe: string;
  stop(): Promise<void>;
}

export async function startReplicators(config: Config, log: Logger, nodes: readonly string[] = Object.keys(config.nodes)): Promise<RunningReplicators> {
  const ac = new AbortController();
  const runs: Promise<void>[] = [];
  try {
    for (const name of nodes) {
      const cfg: Config = { ...config, host: { ...config.host, node: name } };
      const nodeLog = log.child({ node: name });
      const store = await MetaStore.open(cfg, { log: nodeLog, applicationName: `geogridfs-replicator-${name}`, poolSize: 3 });
      const ctx = await openReplicator(store, cfg, nodeLog, ac.signal).catch(async (err: unknown) => {
        await store.close();
        throw err;
      });
      runs.push(
        watch(ctx)
          .catch((err: Error) => nodeLog.error({ err: err.message }, 'replicator stopped'))
          .finally(async () => {
            await ctx.pool.close();
            await store.close();
          }),
      );
    }
  } catch (err) {
    ac.abort();
    await Promise.all(runs);
    throw err;
  }
  return {
    describe: `watching ${nodes.join(', ')}`,
    stop: async () => {
      ac.abort();
      await Promise.all(runs);
    },
  };
}
