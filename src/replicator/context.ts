/**
 * What every replicator task works with: the store, the config, this node
 * (config.host.node) and its local folder, a hash/copy pool, a logger, the
 * stop signal and a holder name for claims.
 */
import os from 'node:os';
import { opendir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
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
  /** test hooks: called between the steps of a copy (tests make races happen there deterministically) */
  hooks?: ReplicatorHooks;
}

/** Points in a copy where tests may act (rename or delete through metadata and node folders). */
export interface ReplicatorHooks {
  /** the verified temp file is ready; nothing is at the destination yet */
  afterTempCopy?(file: { id: number; path: string }): Promise<void>;
  /** the copy is at its destination; not recorded yet */
  afterPlace?(file: { id: number; path: string }): Promise<void>;
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

/** Marker file in a node folder naming the node whose storage it is. */
export const NODE_MARKER = '.ggfs-node';

/**
 * Make sure the folder really is this node's storage before anything is
 * deleted, renamed or declared missing in it: an NFS mount that is not
 * mounted shows an empty folder, where a scrub would forget every copy.
 * Refused (GeoError IO) when the folder is empty while metadata lists copies
 * on the node, or when its marker `.ggfs-node` names another node. The
 * marker (the node's name) is written on first use.
 */
export async function checkNodeFolder(ctx: ReplicatorContext): Promise<void> {
  const marker = path.join(ctx.root, NODE_MARKER);
  const content = await readFile(marker, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
  if (content !== null) {
    if (content.trim() !== ctx.node.name) {
      throw new GeoError('IO', `${ctx.root} belongs to node "${content.trim()}" (${marker}), not to "${ctx.node.name}": check config nodes / host.node`);
    }
    return;
  }
  const dir = await opendir(ctx.root);
  const first = await dir.read();
  await dir.close();
  if (first === null) {
    const held = await ctx.store.query('SELECT 1 FROM replicas WHERE node_id = $1 LIMIT 1', [ctx.node.id]);
    if (held.length) {
      throw new GeoError(
        'IO',
        `${ctx.root} is empty but metadata lists copies on node "${ctx.node.name}": is its storage (NFS) mounted? ` +
          `If the copies are really gone, run \`geogridfs node set-state ${ctx.node.name} dead\` (the others re-replicate).`,
      );
    }
  }
  await writeFile(marker, ctx.node.name + '\n', { mode: 0o644 });
}
