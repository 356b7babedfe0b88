/**
 * Node health as seen by this process: a node whose call timed out (or
 * failed with an error meaning "the server is gone") is *suspect* and skipped
 * for `suspectMs`; after that one call is let through as a probe, and a
 * success clears the mark.
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export interface NodeHealthState {
  suspectUntil: number;
  reason: string;
  failures: number;
}

export class NodeHealth {
  private readonly states = new Map<string, NodeHealthState>();
  constructor(
    private readonly suspectMs: number,
    private readonly log: Logger = silentLogger,
  ) {}

  /** True while the node is skipped. */
  isSuspect(node: string, now = Date.now()): boolean {
    const s = this.states.get(node);
    return !!s && s.suspectUntil > now;
  }

  markSuspect(node: string, reason: string): void {
    const s = this.states.get(node) ?? { suspectUntil: 0, reason, failures: 0 };
    if (!this.isSuspect(node)) this.log.warn({ node, reason, skipMs: this.suspectMs }, 'storage node suspect: skipping it for a while');
    s.suspectUntil = Date.now() + this.suspectMs;
    s.reason = reason;
    s.failures++;
    this.states.set(node, s);
  }

  markHealthy(node: string): void {
    const s = this.states.get(node);
    if (s) {
      this.states.delete(node);
      if (s.suspectUntil > 0) this.log.info({ node }, 'storage node answers again');
    }
  }

  /** Snapshot for status output. */
  snapshot(): Record<string, NodeHealthState> {
    return Object.fromEntries(this.states);
  }
}
