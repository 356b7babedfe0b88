/**
 * What every replicator task works with: the store, the config, this node
 * (config.host.node) and its local folder, a hash/copy pool, a logger, the
 * stop signal and a holder name for claims.
 */
import os from 'node:os';
import { stat } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { MetaStore } from '../meta/store.js';
import { getNode, type NodeRow } from '../meta/nodes.js';
import { HashPool } from '../storage/hash.js';
import { GeoError } from '../util/errors.js';
import type { Logger } from '../util/log.js';

export interface ReplicatorContext {
  store: MetaStore;
  config: Config;
  node: NodeRow;
  /** this node's folder on this host */
  root: string;
  pool: HashPool;
  log: Logger;
  signal: AbortSignal | undefined;
  /** identifies this process in copy claims */
  holder: string;
}

/** Resolve this host's node (config.host.node) in config and metadata; USAGE/NOT_FOUND/IO errors name what is missing. */
export async function openReplicator(store: MetaStore, config: Config, log: Logger, signal?: AbortSignal): Promise<ReplicatorContext> {
  const name = config.host.node;
  if (!name) throw new GeoError('USAGE', 'config host.node is not set: the replicator must know which storage node this host is');
  const root = config.nodes[name];
  if (!root) throw new GeoError('USAGE', `config nodes has no entry for host.node "${name}"`);
  const node = await getNode(store, name);
  if (!node) throw new GeoError('NOT_FOUND', `node "${name}" is not registered: run \`geogridfs node add ${name}\``);
  const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
    throw new GeoError('IO', `node folder ${root} (nodes.${name}) is not reachable: ${err.code ?? err.message}`);
  });
  if (!st.isDirectory()) throw new GeoError('IO', `node folder ${root} (nodes.${name}) is not a directory`);
  const pool = new HashPool({ concurrency: config.replicator.concurrency, stallMs: Math.max(config.storage.timeoutMs * 6, 60_000) });
  return { store, config, node, root, pool, log, signal, holder: `${config.host.name ?? os.hostname()}:${process.pid}:${name}` };
}

/** Refresh the node row (its state may have changed since the run started). */
export async function refreshNode(ctx: ReplicatorContext): Promise<NodeRow> {
  const n = await getNode(ctx.store, ctx.node.name);
  if (!n) throw new GeoError('NOT_FOUND', `node "${ctx.node.name}" was removed from metadata`);
  ctx.node = n;
  return n;
}
