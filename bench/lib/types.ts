/**
 * The bench's data model: targets, measurements, goals, results.
 */

/** The three things every workload runs on. */
export type TargetId = 'bare' | 'mergerfs' | 'geogridfs';
export const TARGETS: readonly TargetId[] = ['bare', 'mergerfs', 'geogridfs'];
export const TARGET_LABEL: Record<TargetId, string> = { bare: 'bare', mergerfs: 'mergerfs', geogridfs: 'GeoGridFS' };

/** A measured value (median of the samples) or the reason there is none. */
export type Measure = { samples: number[]; median: number } | { na: string };

export function isNumber(m: Measure | undefined): m is { samples: number[]; median: number } {
  return m !== undefined && 'median' in m && Number.isFinite(m.median);
}

/**
 * What a workload must show. Ratios are speed ratios: time of the other
 * target / time of GeoGridFS (higher is better; 1.0 = as fast).
 */
export type Goal =
  | { kind: 'speed'; min: number } // GeoGridFS/mergerfs speed ratio >= min
  | { kind: 'hourly'; maxSeconds: number; minSpeed: number } // absolute time, and speed vs the baseline tool
  | { kind: 'rss'; maxMB: number } // GeoGridFS value (MB) below
  | { kind: 'scale'; maxFactor: number }; // value at large scale / value at small scale

export interface WorkloadResult {
  id: string;
  title: string;
  /** unit of the values: s (seconds), ms (per operation), MB */
  unit: 's' | 'ms' | 'MB';
  goal: Goal;
  /** targets this workload has a meaning for (the others show "—") */
  applies: TargetId[];
  /** what ran on each target (tool and arguments, shortened) */
  tools: Partial<Record<TargetId, string>>;
  values: Partial<Record<TargetId, Measure>>;
  /** for scale goals: GeoGridFS's value at the small scale */
  baseline?: Measure;
  baselineLabel?: string;
  note?: string;
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function measure(samples: number[]): Measure {
  return samples.length ? { samples, median: median(samples) } : { na: 'no sample' };
}
