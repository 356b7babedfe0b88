/**
 * Turning results into the console table, the Markdown table, the JSON file
 * and the SVG chart of the ratios.
 */
import { isNumber, TARGET_LABEL, TARGETS, type Measure, type TargetId, type WorkloadResult } from './types.js';
import type { MachineInfo } from './machine.js';

export interface Evaluation {
  /** speed ratios (time of the other / time of GeoGridFS), null when not computable */
  vsMergerfs: number | null;
  vsBare: number | null;
  /** the figure the goal is judged on, as text, and whether it is met (null: no figure) */
  figure: string;
  met: boolean | null;
}

function ratio(other: Measure | undefined, ggfs: Measure | undefined): number | null {
  if (!isNumber(other) || !isNumber(ggfs) || ggfs.median <= 0) return null;
  return other.median / ggfs.median;
}

export function fmtRatio(r: number | null): string {
  if (r === null) return '—';
  if (r >= 100) return `${r.toFixed(0)}×`;
  if (r >= 10) return `${r.toFixed(1)}×`;
  return `${r.toFixed(2)}×`;
}

function fmtNum(x: number): string {
  if (x === 0) return '0';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  if (Math.abs(x) >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

export function fmtValue(m: Measure | undefined, unit: string, applies: boolean): string {
  if (!applies) return '—';
  if (!m) return 'n/a';
  if (!isNumber(m)) return shortNa(m.na);
  return `${fmtNum(m.median)} ${unit}`;
}

/** The table's short form of a reason; the full text is listed under the table and kept in the JSON. */
export function shortNa(reason: string): string {
  return reason.startsWith('not implemented') ? 'n/a (not implemented)' : reason.startsWith('failed') ? 'n/a (failed)' : `n/a (${reason})`;
}

/** Every distinct reason for a missing figure, with the workloads it concerns. */
export function naReasons(results: WorkloadResult[]): string[] {
  const out = new Map<string, string[]>();
  for (const w of results) {
    for (const [t, m] of Object.entries(w.values) as [TargetId, Measure | undefined][]) {
      if (m && !isNumber(m)) out.set(`${TARGET_LABEL[t]}: ${m.na}`, [...(out.get(`${TARGET_LABEL[t]}: ${m.na}`) ?? []), w.id]);
    }
  }
  return [...out].map(([reason, ids]) => `${reason} (${ids.join(', ')})`);
}

export function evaluate(w: WorkloadResult): Evaluation {
  const g = w.values.geogridfs;
  const speedish = w.goal.kind === 'speed' || w.goal.kind === 'hourly';
  const vsMergerfs = speedish ? ratio(w.values.mergerfs, g) : null;
  const vsBare = speedish ? ratio(w.values.bare, g) : null;
  switch (w.goal.kind) {
    case 'speed':
      return { vsMergerfs, vsBare, figure: fmtRatio(vsMergerfs), met: vsMergerfs === null ? null : vsMergerfs >= w.goal.min };
    case 'hourly': {
      if (!isNumber(g)) return { vsMergerfs, vsBare, figure: 'n/a', met: null };
      const abs = g.median < w.goal.maxSeconds;
      const fast = vsMergerfs !== null && vsMergerfs >= w.goal.minSpeed;
      return { vsMergerfs, vsBare, figure: `${fmtNum(g.median)} s, ${fmtRatio(vsMergerfs)}`, met: abs && fast };
    }
    case 'rss':
      return { vsMergerfs, vsBare, figure: isNumber(g) ? `${fmtNum(g.median)} MB` : 'n/a', met: isNumber(g) ? g.median < w.goal.maxMB : null };
    case 'scale': {
      if (!isNumber(g) || !isNumber(w.baseline)) return { vsMergerfs, vsBare, figure: 'n/a', met: null };
      const f = g.median / w.baseline.median;
      return { vsMergerfs, vsBare, figure: `${f.toFixed(2)}× slower`, met: f <= w.goal.maxFactor };
    }
  }
}

export function goalText(w: WorkloadResult): string {
  switch (w.goal.kind) {
    case 'speed':
      return `≥ ${w.goal.min}× mergerfs`;
    case 'hourly':
      return `< ${w.goal.maxSeconds} s and ≥ ${w.goal.minSpeed}× rsync`;
    case 'rss':
      return `< ${w.goal.maxMB} MB`;
    case 'scale':
      return `${w.baselineLabel ?? 'large/small'} ≤ ${w.goal.maxFactor}×`;
  }
}

function metText(e: Evaluation): string {
  return e.met === null ? 'n/a' : e.met ? 'yes' : 'NO';
}

function geoCell(w: WorkloadResult): string {
  const v = fmtValue(w.values.geogridfs, w.unit, w.applies.includes('geogridfs'));
  if (w.goal.kind === 'scale' && w.baseline) return `${v} (vs ${fmtValue(w.baseline, w.unit, true)})`;
  return v;
}

export const HEADERS = ['workload', 'bare', 'mergerfs', 'GeoGridFS', 'GGFS/mergerfs', 'GGFS/bare', 'goal', 'figure', 'met', 'rounds'];

export function rows(results: WorkloadResult[]): string[][] {
  return results.map((w) => {
    const e = evaluate(w);
    return [
      w.title,
      fmtValue(w.values.bare, w.unit, w.applies.includes('bare')),
      fmtValue(w.values.mergerfs, w.unit, w.applies.includes('mergerfs')),
      geoCell(w),
      fmtRatio(e.vsMergerfs),
      fmtRatio(e.vsBare),
      goalText(w),
      e.figure,
      metText(e),
      TARGETS.filter((t) => w.applies.includes(t))
        .map((t) => {
          const m = w.values[t];
          return isNumber(m) ? String(m.samples.length) : '-';
        })
        .join('/'),
    ];
  });
}

/** A plain-text table for the terminal. */
export function textTable(results: WorkloadResult[]): string {
  const body = rows(results);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const reasons = naReasons(results).map((r) => `  n/a: ${r}`);
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), ...reasons].join('\n');
}

export function machineLine(m: MachineInfo): string {
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB.toFixed(1)} GiB RAM, Linux ${m.kernel}, disk ${m.disk}, Node ${m.node}, mergerfs ${m.mergerfs}, PostgreSQL ${m.postgres}, fuse-native ${m.fuseNative}; load average at start ${m.loadAverage}${m.loadAverageEnd !== undefined ? `, at end ${m.loadAverageEnd}` : ''}`;
}

/** The Markdown table (also used in README's Performance section). */
export function markdown(results: WorkloadResult[], m: MachineInfo, meta: { date: string; quick: boolean; rounds: string; totalSec: number }): string {
  const body = rows(results);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out = [
    `Run ${meta.date}${meta.quick ? ' (--quick: small sizes, not for comparison)' : ''}; ${meta.rounds}; whole run ${Math.round(meta.totalSec)} s.`,
    `Machine: ${machineLine(m)}.`,
    '',
    '| ' + HEADERS.join(' | ') + ' |',
    '|' + HEADERS.map((_, i) => (i === 0 ? '---' : '---:')).join('|') + '|',
    ...body.map((r) => '| ' + r.map(esc).join(' | ') + ' |'),
    '',
    'Values are medians (seconds for a whole workload, ms per operation, MB of memory). Ratios are speed ratios: time of mergerfs (or of the bare folder) / time of GeoGridFS, so 1.0× is as fast and higher is better. "rounds" is the number of samples behind each median (bare/mergerfs/GeoGridFS): a slow target gets fewer rounds so that the whole run stays under 15 minutes.',
  ];
  const reasons = naReasons(results);
  if (reasons.length) {
    out.push('', 'Missing figures:');
    for (const r of reasons) out.push(`- ${r}`);
  }
  const notes = results.filter((w) => w.note);
  if (notes.length) {
    out.push('', 'Notes:');
    for (const w of notes) out.push(`- ${w.title}: ${w.note}`);
  }
  return out.join('\n') + '\n';
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * A horizontal bar chart of the speed ratios (log scale, 0.01× .. 100×): per
 * workload a bar for GeoGridFS/mergerfs and one for GeoGridFS/bare, the goal
 * as a tick; rows without a ratio are labelled n/a.
 */
export function svgChart(results: WorkloadResult[], title: string): string {
  const rowsWithRatio = results.filter((w) => w.goal.kind === 'speed' || w.goal.kind === 'hourly');
  const labelW = 330;
  const plotW = 520;
  const rowH = 34;
  const top = 56;
  const height = top + rowsWithRatio.length * rowH + 50;
  const width = labelW + plotW + 140;
  const lo = -2;
  const hi = 2;
  const x = (r: number) => labelW + ((Math.log10(Math.min(Math.max(r, 10 ** lo), 10 ** hi)) - lo) / (hi - lo)) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${xmlEscape(title)}</text>`);
  parts.push(`<rect x="${labelW}" y="30" width="12" height="10" fill="#2b6cb0"/><text x="${labelW + 16}" y="39">GeoGridFS / mergerfs</text>`);
  parts.push(`<rect x="${labelW + 170}" y="30" width="12" height="10" fill="#a0aec0"/><text x="${labelW + 186}" y="39">GeoGridFS / bare</text>`);
  parts.push(`<line x1="${labelW + 300}" y1="35" x2="${labelW + 312}" y2="35" stroke="#c53030" stroke-width="3"/><text x="${labelW + 316}" y="39">goal</text>`);
  for (const t of [0.01, 0.1, 0.5, 1, 2, 10, 100]) {
    const tx = x(t);
    parts.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${top + rowsWithRatio.length * rowH}" stroke="${t === 1 ? '#333' : '#ddd'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    parts.push(`<text x="${tx}" y="${top + rowsWithRatio.length * rowH + 16}" text-anchor="middle">${t}×</text>`);
  }
  parts.push(`<text x="${labelW + plotW / 2}" y="${top + rowsWithRatio.length * rowH + 36}" text-anchor="middle" fill="#555">speed ratio (log scale; right of 1× = GeoGridFS faster)</text>`);
  rowsWithRatio.forEach((w, i) => {
    const y = top + i * rowH;
    const e = evaluate(w);
    parts.push(`<text x="${labelW - 8}" y="${y + 19}" text-anchor="end">${xmlEscape(w.title)}</text>`);
    const bar = (r: number | null, dy: number, h: number, color: string) => {
      if (r === null) return;
      const x0 = x(1);
      const x1 = x(r);
      parts.push(`<rect x="${Math.min(x0, x1)}" y="${y + dy}" width="${Math.max(1, Math.abs(x1 - x0))}" height="${h}" fill="${color}"/>`);
    };
    if (e.vsMergerfs === null && e.vsBare === null) {
      parts.push(`<text x="${x(1) + 6}" y="${y + 19}" fill="#777">n/a</text>`);
    } else {
      bar(e.vsMergerfs, 5, 13, '#2b6cb0');
      bar(e.vsBare, 19, 8, '#a0aec0');
    }
    const goal = w.goal.kind === 'speed' ? w.goal.min : w.goal.kind === 'hourly' ? w.goal.minSpeed : null;
    if (goal !== null) parts.push(`<line x1="${x(goal)}" y1="${y + 2}" x2="${x(goal)}" y2="${y + 30}" stroke="#c53030" stroke-width="3"/>`);
    const label = e.vsMergerfs === null ? 'n/a' : `${fmtRatio(e.vsMergerfs)} / ${fmtRatio(e.vsBare)}`;
    parts.push(`<text x="${labelW + plotW + 8}" y="${y + 19}" fill="${e.met === false ? '#c53030' : '#222'}">${xmlEscape(label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The JSON document written under bench/results/. */
export function jsonDoc(results: WorkloadResult[], m: MachineInfo, meta: Record<string, unknown>): unknown {
  return {
    ...meta,
    machine: m,
    workloads: results.map((w) => ({ ...w, evaluation: evaluate(w), goalText: goalText(w) })),
    targets: TARGETS.map((t: TargetId) => ({ id: t, label: TARGET_LABEL[t] })),
  };
}
