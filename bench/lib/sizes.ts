/**
 * Workload sizes: the full run (the figures) and --quick (a smoke run
 * of about a minute).
 */
export interface Sizes {
  rounds: number;
  /** sequential write/read */
  seqBytes: number;
  blockBytes: number;
  /** small files */
  smallCount: number;
  smallBytes: number;
  /** walk */
  walkCount: number;
  walkFileBytes: number;
  /** replicate and backup pull: a mixed-size set of about this many bytes */
  mixedBytes: number;
  /** rounds of the 1 GiB mixed workloads (each round needs a fresh copy) */
  mixedRounds: number;
  /** backup hourly: files registered (and held by the backup host) */
  hourlyFiles: number;
  /** metadata scale: small and large file counts (folders of 100 files) */
  scaleSmall: number;
  scaleLarge: number;
  /** lookups (distinct files) and listings (distinct folders) timed per scale */
  lookups: number;
  listings: number;
  /** per workload group: each target may spend a third of this on rounds after its first */
  budgetSec: Record<string, number>;
  /** no extra round starts later than this many seconds after the start (full run: keeps it under 15 minutes) */
  extraRoundsWithinSec: number;
}

const MiB = 1 << 20;

export const FULL: Sizes = {
  rounds: 3,
  seqBytes: 1024 * MiB,
  blockBytes: MiB,
  smallCount: 10_000,
  smallBytes: 4096,
  walkCount: 10_000,
  walkFileBytes: 4096,
  mixedBytes: 1024 * MiB,
  mixedRounds: 2,
  hourlyFiles: 100_000,
  scaleSmall: 10_000,
  scaleLarge: 1_000_000,
  lookups: 2000,
  listings: 50,
  extraRoundsWithinSec: 540,
  budgetSec: { 'backup-pull': 60, seq: 150, small: 120, walk: 60, replicate: 60, 'backup-hourly': 30 },
};

export const QUICK: Sizes = {
  rounds: 1,
  seqBytes: 32 * MiB,
  blockBytes: MiB,
  smallCount: 300,
  smallBytes: 4096,
  walkCount: 300,
  walkFileBytes: 4096,
  mixedBytes: 24 * MiB,
  mixedRounds: 1,
  hourlyFiles: 2000,
  scaleSmall: 1000,
  scaleLarge: 10_000,
  lookups: 100,
  listings: 5,
  budgetSec: {},
  extraRoundsWithinSec: Infinity,
};

/**
 * The mixed-size set: a few large files, some medium, many small, summing to
 * about `total` bytes (a quarter each of 256 MiB-class, 8 MiB, 512 KiB and 64 KiB files, scaled).
 */
export function mixedSpec(total: number, prefix: string): { rel: string; size: number }[] {
  const quarter = Math.floor(total / 4);
  const classes = [
    { size: Math.max(Math.floor(quarter / 2), 1), name: 'large' },
    { size: Math.min(8 * MiB, Math.max(Math.floor(quarter / 8), 1)), name: 'medium' },
    { size: Math.min(512 << 10, Math.max(Math.floor(quarter / 64), 1)), name: 'small' },
    { size: Math.min(64 << 10, Math.max(Math.floor(quarter / 512), 1)), name: 'tiny' },
  ];
  const out: { rel: string; size: number }[] = [];
  for (const c of classes) {
    const n = Math.max(1, Math.floor(quarter / c.size));
    for (let i = 0; i < n; i++) out.push({ rel: `${prefix}/${c.name}/${String(Math.floor(i / 100)).padStart(3, '0')}/${c.name}-${String(i).padStart(5, '0')}.bin`, size: c.size });
  }
  return out;
}
