/**
 * Metadata scale, on a generated metadata load (bulk INSERT … SELECT
 * generate_series into folders/files/replicas; no file bytes on disk):
 *
 * - lookup latency (lstat of files not seen before, through a freshly
 *   started mount, cold kernel cache) and listing latency (readdir of a
 *   100-entry folder) with the small load, then with the large load: the same
 *   paths, so only the size of the tables differs;
 * - the mount's resident memory after a full `find` over the large load
 *   (mergerfs's after a `find` over its own tree, for reference).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { failReason, io, timed, type BenchContext } from '../lib/context.js';
import { dropCaches } from '../lib/proc.js';
import { measure, type Measure, type WorkloadResult } from '../lib/types.js';

const PER_FOLDER = 100;
const CHECKSUM = 'ab'.repeat(32);

function folderName(i: number): string {
  return `/scale/d${String(i).padStart(5, '0')}`;
}

/** Generate folders [from, to) of PER_FOLDER files each, in chunks of one transaction. */
export async function load(ctx: BenchContext, from: number, to: number): Promise<void> {
  const store = await ctx.ggfs.store();
  const nowUs = Date.now() * 1000;
  const n1 = Number((await store.query<{ id: number }>(`SELECT id FROM nodes WHERE name = 'n1'`))[0]!.id);
  await store.query(
    `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us) VALUES ('/scale', (SELECT id FROM folders WHERE path = '/'), 493, 0, 0, $1, $1)
     ON CONFLICT (path) DO NOTHING`,
    [nowUs],
  );
  const scaleId = Number((await store.query<{ id: number }>(`SELECT id FROM folders WHERE path = '/scale'`))[0]!.id);
  const chunk = 1000;
  for (let a = from; a < to; a += chunk) {
    const b = Math.min(to, a + chunk);
    await store.txn(async (tx) => {
      // a generated load: no triggers (no queue entries, no per-row work), seq taken explicitly
      await tx.query('SET LOCAL session_replication_role = replica');
      await tx.query(
        `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us, seq)
         SELECT '/scale/d' || lpad(i::text, 5, '0'), $1, 493, 0, 0, $2, $2, nextval('change_seq') FROM generate_series($3::int, $4::int - 1) i`,
        [scaleId, nowUs, a, b],
      );
      await tx.query(
        `INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, class, replica_target, backup_target, version, seq)
         SELECT fo.path || '/f' || lpad(j::text, 3, '0'), fo.id, 'file', 4096, 420, 0, 0, $2, $2, $2, $5, 'default', 1, 0, 1, nextval('change_seq')
           FROM folders fo CROSS JOIN generate_series(0, ${PER_FOLDER - 1}) j
          WHERE fo.parent_id = $1 AND fo.path >= $3 AND fo.path < $4`,
        [scaleId, nowUs, folderName(a), folderName(b), CHECKSUM],
      );
      await tx.query(
        `INSERT INTO replicas (file_id, node_id, version, path)
         SELECT f.id, $2, 1, f.path FROM files f JOIN folders fo ON fo.id = f.folder_id
          WHERE fo.parent_id = $1 AND fo.path >= $3 AND fo.path < $4 AND f.deleted_at IS NULL`,
        [scaleId, n1, folderName(a), folderName(b)],
      );
    });
  }
  await store.query('ANALYZE folders');
  await store.query('ANALYZE files');
  await store.query('ANALYZE replicas');
}

/** Paths used at both scales: lookups in the first half of the small load's folders, listings in the second half. */
function samples(ctx: BenchContext): { files: string[]; folders: string[] } {
  const { scaleSmall, lookups, listings } = ctx.sizes;
  const smallFolders = Math.floor(scaleSmall / PER_FOLDER);
  const half = Math.floor(smallFolders / 2);
  const files = new Set<string>();
  for (let k = 0; files.size < Math.min(lookups, half * PER_FOLDER); k++) {
    const f = (k * 7919) % half;
    const j = (k * 31 + Math.floor(k / half)) % PER_FOLDER;
    files.add(`${folderName(f)}/f${String(j).padStart(3, '0')}`);
  }
  const folders: string[] = [];
  for (let i = 0; i < Math.min(listings, smallFolders - half); i++) folders.push(folderName(half + i));
  return { files: [...files], folders };
}

/** ms per operation for lookups and listings through a freshly started mount, `rounds` times. */
async function latencies(ctx: BenchContext, lists: { files: string; folders: string }, count: { files: number; folders: number }): Promise<{ lookup: number[]; listing: number[] }> {
  const lookup: number[] = [];
  const listing: number[] = [];
  for (let r = 0; r < ctx.sizes.rounds; r++) {
    await ctx.ggfs.unmount();
    await ctx.ggfs.mount();
    await dropCaches();
    lookup.push((await io(['statlist', lists.files])) / count.files);
    listing.push((await io(['listdirs', lists.folders])) / count.folders);
  }
  return { lookup, listing };
}

/** EXPLAIN ANALYZE of the path lookup, for the report. */
async function explainLookup(ctx: BenchContext, p: string): Promise<string> {
  const store = await ctx.ggfs.store();
  const rows = await store.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM files WHERE path = $1 AND deleted_at IS NULL`, [p]);
  return rows.map((r) => r['QUERY PLAN']).join(' / ');
}

async function rssMB(pid: number | null): Promise<{ rss: number; hwm: number } | null> {
  if (!pid) return null;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  const rss = kb('VmRSS');
  return Number.isFinite(rss) ? { rss: rss / 1024, hwm: kb('VmHWM') / 1024 } : null;
}

export async function scaleWorkloads(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { scaleSmall, scaleLarge } = ctx.sizes;
  const fmt = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1000 ? `${n / 1000}k` : String(n));
  const label = `${fmt(scaleLarge)}/${fmt(scaleSmall)}`;
  const na = ctx.ggfs.unavailable('mount');
  let lookupSmall: Measure = { na: na ?? 'not run' };
  let lookupLarge: Measure = { na: na ?? 'not run' };
  let listSmall: Measure = { na: na ?? 'not run' };
  let listLarge: Measure = { na: na ?? 'not run' };
  let rss: Measure = { na: na ?? 'not run' };
  let mergerRss: Measure = { na: 'not run' };
  let rssNote = '';
  let scaleNote = '';
  if (!na) {
    try {
      const sm = samples(ctx);
      const lists = { files: path.join(ctx.scratch, 'scale-files.list'), folders: path.join(ctx.scratch, 'scale-folders.list') };
      await writeFile(lists.files, sm.files.map((f) => path.join(ctx.ggfs.mountPoint, f)).join('\n') + '\n');
      await writeFile(lists.folders, sm.folders.map((f) => path.join(ctx.ggfs.mountPoint, f)).join('\n') + '\n');
      const count = { files: sm.files.length, folders: sm.folders.length };
      let t0 = Date.now();
      ctx.log(`  scale: generating ${fmt(scaleSmall)} files of metadata`);
      await load(ctx, 0, scaleSmall / PER_FOLDER);
      const small = await latencies(ctx, lists, count);
      const explainSmall = await explainLookup(ctx, sm.files[0]!);
      lookupSmall = measure(small.lookup);
      listSmall = measure(small.listing);
      ctx.log(`  scale: generating up to ${fmt(scaleLarge)} files of metadata (${Math.round((Date.now() - t0) / 1000)} s so far)`);
      t0 = Date.now();
      await load(ctx, scaleSmall / PER_FOLDER, scaleLarge / PER_FOLDER);
      const loadSec = (Date.now() - t0) / 1000;
      const large = await latencies(ctx, lists, count);
      const explainLarge = await explainLookup(ctx, sm.files[0]!);
      lookupLarge = measure(large.lookup);
      listLarge = measure(large.listing);
      scaleNote = `${count.files} lookups and ${count.folders} listings per round through a freshly started mount; generating ${fmt(scaleLarge - scaleSmall)} rows took ${Math.round(loadSec)} s; path lookup plan at ${fmt(scaleSmall)}: ${explainSmall}; at ${fmt(scaleLarge)}: ${explainLarge}`;

      // memory: a fresh mount, a full find, then its resident set
      await ctx.ggfs.unmount();
      await ctx.ggfs.mount();
      ctx.log(`  scale: find over the whole GeoGridFS mount (${fmt(scaleLarge)}+ entries)`);
      const findMs = await timed('find', [ctx.ggfs.mountPoint], { discardStdout: true, timeoutMs: 1_800_000 });
      const m = await rssMB(await ctx.ggfs.mountPid());
      if (!m) throw new Error('cannot read the mount process\'s memory');
      rss = measure([m.rss]);
      const st = await ctx.ggfs.mountStatus();
      const split = st?.memoryMB
        ? `; of it V8 heap ${st.memoryMB.heapTotal} MB (${st.memoryMB.heapUsed} MB used; the metadata cache holds ${st.cache?.size} entries), the rest native (libfuse's node table of every entry the kernel keeps cached, buffers, code)`
        : '';
      rssNote = `after \`find\` over ${fmt(scaleLarge)}+ entries (${(findMs / 1000).toFixed(1)} s); peak RSS (VmHWM) ${m.hwm.toFixed(0)} MB${split}`;
    } catch (err) {
      const reason = failReason(err);
      for (const m of [lookupSmall, lookupLarge, listSmall, listLarge, rss]) if ('na' in m && m.na === 'not run') m.na = reason;
      if (!isMeasured(lookupLarge)) lookupLarge = { na: reason };
      if (!isMeasured(listLarge)) listLarge = { na: reason };
      if (!isMeasured(rss)) rss = { na: reason };
    }
  }
  try {
    await timed('find', [ctx.mergerfs.mount], { discardStdout: true });
    const m = await rssMB(ctx.mergerfs.pid);
    if (m) {
      mergerRss = measure([m.rss]);
      const entries = await countEntries(ctx.mergerfs.mount);
      rssNote += `${rssNote ? '; ' : ''}mergerfs: after \`find\` over its own ${entries} entries (it keeps no metadata of its own)`;
    }
  } catch (err) {
    mergerRss = { na: failReason(err) };
  }
  return [
    {
      id: 'scale-lookup',
      title: `metadata lookup latency (cold lstat), ${label} files`,
      unit: 'ms',
      goal: { kind: 'scale', maxFactor: 2 },
      applies: ['geogridfs'],
      tools: { geogridfs: 'node io statlist through a fresh mount' },
      values: { geogridfs: lookupLarge },
      baseline: lookupSmall,
      baselineLabel: label,
      ...(scaleNote ? { note: scaleNote } : {}),
    },
    {
      id: 'scale-listing',
      title: `metadata listing latency (readdir of 100 entries), ${label} files`,
      unit: 'ms',
      goal: { kind: 'scale', maxFactor: 2 },
      applies: ['geogridfs'],
      tools: { geogridfs: 'node io listdirs through a fresh mount' },
      values: { geogridfs: listLarge },
      baseline: listSmall,
      baselineLabel: label,
    },
    {
      id: 'mount-rss',
      title: `mount RSS with ${fmt(scaleLarge)} files in metadata, after a full find`,
      unit: 'MB',
      goal: { kind: 'rss', maxMB: 300 },
      applies: ['mergerfs', 'geogridfs'],
      tools: { mergerfs: 'VmRSS of mergerfs', geogridfs: 'VmRSS of geogridfs mount' },
      values: { mergerfs: mergerRss, geogridfs: rss },
      ...(rssNote ? { note: rssNote } : {}),
    },
  ];
}

function isMeasured(m: Measure): boolean {
  return 'median' in m;
}

async function countEntries(dir: string): Promise<number> {
  const { run } = await import('../lib/proc.js');
  const r = await run('sh', ['-c', 'find "$1" | wc -l', 'sh', dir]);
  return Number(r.stdout.trim()) || 0;
}
