/**
 * What every workload gets: sizes, the three targets, and helpers to run the
 * I/O tool and standard tools timed from outside the file system.
 */
import path from 'node:path';
import { BENCH_DIST, check, childEnv, run, type RunOptions } from './proc.js';
import type { GeoGridFS } from './geogridfs.js';
import type { Sizes } from './sizes.js';
import { measure, type Measure, type TargetId } from './types.js';

export interface MergerfsTarget {
  mount: string;
  branches: string[];
  /** the mergerfs process (for its memory figure) */
  pid: number | null;
}

export interface BenchContext {
  quick: boolean;
  sizes: Sizes;
  scratch: string;
  bare: string;
  mergerfs: MergerfsTarget;
  ggfs: GeoGridFS;
  /** epoch ms after which no extra round starts */
  extraRoundsUntil: number;
  log(msg: string): void;
}

const IO_TOOL = path.join(BENCH_DIST, 'tools', 'io.js');

/** Run the I/O tool; returns the milliseconds of its file system calls. */
export async function io(args: string[], timeoutMs = 900_000): Promise<number> {
  const r = check(await run(process.execPath, [IO_TOOL, ...args], { env: childEnv(), timeoutMs }), `io ${args.slice(0, 2).join(' ')}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const parsed = JSON.parse(line) as { ms: number };
  return parsed.ms;
}

/** Run a standard tool to completion; returns its wall-clock milliseconds. */
export async function timed(cmd: string, args: string[], opts: RunOptions = {}): Promise<number> {
  const r = check(await run(cmd, args, { timeoutMs: 900_000, ...opts }), `${cmd} ${args.slice(0, 3).join(' ')}`);
  return r.wallMs;
}

/** The folder a file-system workload uses on each target (GeoGridFS: its mount). */
export function rootOf(ctx: BenchContext, t: TargetId): string {
  return t === 'bare' ? ctx.bare : t === 'mergerfs' ? ctx.mergerfs.mount : ctx.ggfs.mountPoint;
}

/**
 * Collects samples per target for several named measures; a target whose
 * run failed or is unavailable gets a reason instead of numbers.
 */
export class Samples {
  private data = new Map<string, Map<TargetId, number[]>>();
  private reasons = new Map<string, Map<TargetId, string>>();

  add(key: string, t: TargetId, value: number): void {
    let m = this.data.get(key);
    if (!m) this.data.set(key, (m = new Map()));
    let xs = m.get(t);
    if (!xs) m.set(t, (xs = []));
    xs.push(value);
  }

  fail(keys: string[], t: TargetId, reason: string): void {
    for (const key of keys) {
      let m = this.reasons.get(key);
      if (!m) this.reasons.set(key, (m = new Map()));
      if (!m.has(t)) m.set(t, reason);
    }
  }

  get(key: string, t: TargetId): Measure {
    const reason = this.reasons.get(key)?.get(t);
    if (reason) return { na: reason };
    return measure(this.data.get(key)?.get(t) ?? []);
  }

  values(key: string, targets: readonly TargetId[]): Partial<Record<TargetId, Measure>> {
    return Object.fromEntries(targets.map((t) => [t, this.get(key, t)]));
  }
}

/** A short reason from an error, for the table. */
export function failReason(err: unknown): string {
  const msg = (err as Error).message ?? String(err);
  return `failed: ${msg.split('\n').filter(Boolean).slice(0, 2).join(' / ').slice(0, 160)}`;
}

/** Round r's target order: rotated each round so drift (disk, page cache) does not favour one target. */
export function orderFor(round: number, targets: readonly TargetId[]): TargetId[] {
  const k = round % targets.length;
  return [...targets.slice(k), ...targets.slice(0, k)];
}

/**
 * Rounds within a time budget: every target gets its first round; a further
 * round of a target runs only while its own time on this workload plus its
 * last round fits a third of the group's budget, and only before the run's
 * deadline for extra rounds (so a slow target gets fewer rounds, and the
 * whole bench keeps to its time). The JSON keeps every sample, so the number
 * of rounds behind each median is visible.
 */
export class RoundPlanner {
  private readonly last = new Map<TargetId, number>();
  private readonly total = new Map<TargetId, number>();

  constructor(
    private readonly rounds: number,
    private readonly budgetSec: number,
    /** epoch ms after which no extra round starts (the run's time limit) */
    private readonly extraUntil = Infinity,
  ) {}

  runs(t: TargetId, round: number): boolean {
    if (round === 0) return true;
    if (round >= this.rounds) return false;
    const last = this.last.get(t) ?? 0;
    if (Date.now() + last * 1000 > this.extraUntil) return false;
    return (this.total.get(t) ?? 0) + last <= this.budgetSec / 3;
  }

  /** Whether any target still runs round `round`. */
  anyRuns(targets: readonly TargetId[], round: number): boolean {
    return targets.some((t) => this.runs(t, round));
  }

  /** Mark the start of a round of `t`; call the returned function at its end. */
  begin(t: TargetId): () => void {
    const t0 = Date.now();
    return () => {
      const sec = (Date.now() - t0) / 1000;
      this.last.set(t, sec);
      this.total.set(t, (this.total.get(t) ?? 0) + sec);
    };
  }
}
