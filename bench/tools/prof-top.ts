/**
 * Summarise V8 CPU profiles (from `--cpu-prof`, e.g. `bench --cpu-prof DIR`):
 * where the time went, by function (self time) and by source file, plus the
 * idle share (time the process waited: for the kernel, the disk or PostgreSQL).
 *
 *   prof-top FILE.cpuprofile... [--top N]
 */
import fs from 'node:fs';
import path from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

process.stdout.on('error', () => process.exit(0)); // piped into head
const args = process.argv.slice(2);
const topIdx = args.indexOf('--top');
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
const files = args.filter((a, i) => a !== '--top' && (topIdx < 0 || i !== topIdx + 1));

const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
let wall = 0;
for (const file of files) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  wall += (p.endTime - p.startTime) / 1000;
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    const n = nodes.get(id)!;
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    const short = url.includes('node_modules/') ? url.slice(url.lastIndexOf('node_modules/') + 13) : url.includes('/dist/') ? url.slice(url.indexOf('/dist/') + 6) : url || '(native)';
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${short ? `${path.basename(short)}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
    const key = n.callFrame.functionName === '(idle)' ? '(idle)' : n.callFrame.functionName === '(garbage collector)' ? '(gc)' : short.split('/').slice(0, short.startsWith('node:') ? 1 : 2).join('/');
    byFile.set(key, (byFile.get(key) ?? 0) + ms);
    total += ms;
  });
}
const pct = (ms: number) => `${((ms / total) * 100).toFixed(1).padStart(5)}%`;
const show = (title: string, m: Map<string, number>, n: number) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, ms] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${pct(ms)} ${ms.toFixed(0).padStart(8)} ms  ${k}\n`);
};
process.stdout.write(`${files.length} profile(s), ${wall.toFixed(0)} ms profiled, ${total.toFixed(0)} ms sampled\n`);
show('self time by function', byFn, top);
show('self time by module', byFile, 15);
