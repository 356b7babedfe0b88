/**
 * Smoke test of the bench harness: `node dist/bench/run.js --quick` runs end
 * to end. No timing assertions (timing lives in bench/): every workload must
 * produce a number for every target it applies to, and the run must leave no
 * mount and no process behind.
 *
 * A GeoGridFS figure may be missing only as "not implemented" when this build
 * really lacks the command (checked here independently); a failed GeoGridFS
 * side fails the test.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchDir } from '../helpers/db.js';
import { cliProcess } from '../helpers/cli.js';
import { mountsUnder, processesMentioning } from '../../bench/lib/cleanup.js';
import { childEnv, run } from '../../bench/lib/proc.js';

t.setTimeout(900_000);

const RUN_JS = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

/** Workload id -> the GeoGridFS commands its GeoGridFS side needs. */
const EXPECTED: Record<string, string[][]> = {
  'backup-pull': [['replicator', 'walk'], ['api'], ['backup', 'replicate']],
  'seq-write': [['mount']],
  'seq-read': [['mount']],
  'small-create': [['mount']],
  'small-read': [['mount']],
  'stat-hot': [['mount']],
  'ls-l': [['mount']],
  rename: [['mount']],
  unlink: [['mount']],
  walk: [['replicator', 'walk']],
  replicate: [['replicator', 'walk'], ['replicator', 'replicate']],
  'backup-hourly': [['api'], ['backup', 'replicate']],
  'scale-lookup': [['mount']],
  'scale-listing': [['mount']],
  'mount-rss': [['mount']],
};

interface Doc {
  scratch: string;
  quick: boolean;
  failure: string | null;
  workloads: {
    id: string;
    applies: string[];
    values: Record<string, { median?: number; na?: string }>;
    baseline?: { median?: number; na?: string };
  }[];
}

async function commandExists(words: string[]): Promise<boolean> {
  const r = await cliProcess([...words, '--help']);
  return r.code === 0 && r.stdout.trimStart().startsWith(`geogridfs ${words.join(' ')}`);
}

t.test('npm run bench -- --quick runs every workload on every target and cleans up', async (t) => {
  const out = await scratchDir('bench-quick-');
  const r = await run(process.execPath, [RUN_JS, '--quick', '--out', out], { env: childEnv(), timeoutMs: 850_000 });
  t.equal(r.code, 0, `the quick bench exits 0\n${r.stderr.split('\n').slice(-30).join('\n')}`);
  t.match(r.stdout, /GGFS\/mergerfs/, 'prints the table');
  t.match(r.stdout, /machine: \d+ × /, 'prints the machine');

  const jsonFile = path.join(out, 'latest-quick.json');
  t.ok(existsSync(jsonFile), 'writes the JSON');
  t.ok(existsSync(path.join(out, 'latest-quick.md')), 'writes the Markdown table');
  const svg = await readFile(path.join(out, 'latest-quick.svg'), 'utf8').catch(() => '');
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, 'writes the SVG chart');
  if (!existsSync(jsonFile)) return;
  const doc = JSON.parse(await readFile(jsonFile, 'utf8')) as Doc;
  t.equal(doc.quick, true);
  t.equal(doc.failure, null, 'no set-up failure');

  t.same(doc.workloads.map((w) => w.id).sort(), Object.keys(EXPECTED).sort(), 'every workload reported');
  const exists = new Map<string, boolean>();
  for (const w of doc.workloads) {
    for (const target of w.applies) {
      const v = w.values[target];
      if (v && typeof v.median === 'number' && Number.isFinite(v.median)) {
        t.pass(`${w.id} on ${target}: ${v.median}`);
        continue;
      }
      if (target === 'geogridfs' && v?.na?.startsWith('not implemented')) {
        let missing = false;
        for (const words of EXPECTED[w.id] ?? []) {
          const key = words.join(' ');
          if (!exists.has(key)) exists.set(key, await commandExists(words));
          if (!exists.get(key)) missing = true;
        }
        t.ok(missing, `${w.id} on GeoGridFS is "not implemented" only when a command it needs is absent (${v.na})`);
        continue;
      }
      t.fail(`${w.id} on ${target} produced no number: ${v?.na ?? 'missing'}`);
    }
    if (w.baseline && w.values.geogridfs && typeof w.values.geogridfs.median === 'number') {
      t.type(w.baseline.median, 'number', `${w.id}: the small-scale baseline was measured too`);
    }
  }

  t.ok(doc.scratch && doc.scratch.includes('geogridfs-bench'), 'reports its scratch folder');
  t.same(await mountsUnder(doc.scratch), [], 'no mount left under the scratch folder');
  const procMounts = await readFile('/proc/mounts', 'utf8');
  t.notOk(procMounts.includes(doc.scratch), 'nothing of the run in /proc/mounts');
  t.same(await processesMentioning(doc.scratch), [], 'no process left that belongs to the run (mount, mergerfs, PostgreSQL, API, servers)');
  t.notOk(existsSync(doc.scratch), 'the scratch folder is removed');
});

t.test('an interrupted bench still cleans up (SIGINT during the run)', async (t) => {
  const out = await scratchDir('bench-int-');
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [RUN_JS, '--quick', '--only', 'seq', '--out', out], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // interrupt once the GeoGridFS side is up (its mount or the mergerfs one), or after 60 s
  const scratch = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve(''), 60_000);
    child.stderr.on('data', () => {
      const m = /scratch folder (\S+)/.exec(stderr);
      if (m && /bench: (GeoGridFS mounted|GeoGridFS features|seq)/.test(stderr)) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  t.ok(scratch, `the run started (${stderr.split('\n').slice(-5).join(' | ')})`);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.equal(code, 130, 'exits 130 after SIGINT');
  t.match(stderr, /SIGINT: cleaning up/);
  if (!scratch) return;
  t.same(await mountsUnder(scratch), [], 'no mount left');
  t.same(await processesMentioning(scratch), [], 'no process left');
  t.notOk(existsSync(scratch), 'scratch folder removed');
});
