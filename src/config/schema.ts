/**
 * The typed schema of `config.ts`. Each key is declared once, here, with its
 * type, default and a one-line description (`.describe`). Unknown keys are
 * rejected (`.strict()`), and every validation error names the key's path.
 */
import { z } from 'zod';

const nodeName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a node name is 1-63 letters, digits, ".", "_" or "-"');

const absolutePath = z.string().refine((p) => p.startsWith('/'), 'must be an absolute path');

const placementPolicies = ['mfs', 'ff', 'lfs', 'rand', 'epff'] as const;
const readPolicies = ['spread', 'ff', 'rand'] as const;

export const classSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a class name is lower-case letters, digits, "_" or "-"').describe('class name stored with each file'),
    pattern: z.string().min(1).describe('glob matched against the virtual path ("**" any depth, "*" within a name, "?" one char); first match wins'),
    replicaTarget: z.number().int().min(1).max(16).describe('number of storage-node copies each file of this class should have'),
    backupTarget: z.number().int().min(0).max(16).describe('number of off-site backup nodes that should hold each file of this class'),
  })
  .strict();

export const configSchema = z
  .object({
    dataDir: z.string().min(1).optional().describe('local state folder (embedded PostgreSQL, journals, locks); default /var/lib/geogridfs as root, ~/.local/share/geogridfs otherwise'),
    database: z
      .object({
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional().describe('PostgreSQL URL; absent = the embedded server under dataDir'),
        poolSize: z.number().int().min(1).max(200).default(10).describe('connections in this process\'s pool'),
        statementTimeoutMs: z.number().int().min(100).default(30_000).describe('server-side time-out of one statement'),
        embeddedPort: z.number().int().min(0).max(65535).default(0).describe('TCP port (loopback) of the embedded server; 0 = pick a free one at first start'),
      })
      .strict()
      .default({ poolSize: 10, statementTimeoutMs: 30_000, embeddedPort: 0 }),
    nodes: z.record(nodeName, absolutePath).default({}).describe('storage node name -> the folder where this host sees it (its NFS mount)'),
    host: z
      .object({
        node: nodeName.optional().describe('the storage node this host is (the replicator works on it)'),
        name: z.string().min(1).optional().describe('this host\'s name in logs and claims; default os.hostname()'),
      })
      .strict()
      .default({}),
    classes: z
      .array(classSchema)
      .default([{ name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 }])
      .describe('file classes, ordered; the first whose pattern matches a path decides its targets'),
    mount: z
      .object({
        placement: z.enum(placementPolicies).default('mfs').describe('placement policy for new files: mfs (most free), ff (first found), lfs (least free), rand, epff (existing path, first found)'),
        readPolicy: z.enum(readPolicies).default('spread').describe('which replica serves reads: spread (hash of path over healthy replicas), ff, rand'),
        attrTimeoutSec: z.number().min(0).max(3600).default(1).describe('kernel attribute/entry cache lifetime (seconds)'),
        opTimeoutSec: z.number().int().min(1).max(600).default(30).describe('fuse-native per-operation time-out before the kernel gets ETIMEDOUT'),
        cacheEntries: z.number().int().min(100).default(50_000).describe('bound of the in-memory metadata cache (entries; about 0.9 KB of memory each)'),
        negativeCacheSec: z.number().min(0).default(5).describe('lifetime of a cached "does not exist" answer (also invalidated by NOTIFY)'),
        allowOther: z.boolean().default(false).describe('let other users use the mount (FUSE allow_other; needs user_allow_other in /etc/fuse.conf for non-root)'),
        nativeAttrCache: z
          .boolean()
          .default(true)
          .describe("answer getattr of cached metadata entries on libfuse's thread (the rebuilt binding's attribute cache), without the trip to JavaScript"),
      })
      .strict()
      .default({ placement: 'mfs', readPolicy: 'spread', attrTimeoutSec: 1, opTimeoutSec: 30, cacheEntries: 50_000, negativeCacheSec: 5, allowOther: false, nativeAttrCache: true }),
    storage: z
      .object({
        timeoutMs: z.number().int().min(50).default(10_000).describe('time-out of one storage call on a node folder'),
        perNodeConcurrency: z.number().int().min(1).max(64).default(8).describe('storage calls in flight per node, so one hung node cannot take every thread'),
        suspectMs: z.number().int().min(0).default(30_000).describe('how long a node that timed out is skipped'),
        threadPoolSize: z.number().int().min(4).max(1024).default(64).describe('libuv thread pool size (UV_THREADPOOL_SIZE) for file I/O'),
      })
      .strict()
      .default({ timeoutMs: 10_000, perNodeConcurrency: 8, suspectMs: 30_000, threadPoolSize: 64 }),
    replicator: z
      .object({
        concurrency: z.number().int().min(1).max(64).default(4).describe('files hashed or copied at once'),
        budgetSec: z.number().int().min(1).default(50).describe('a replicate run stops taking new work after this long (cron every minute)'),
        budgetBytes: z.number().int().min(1).default(50 * 2 ** 30).describe('a replicate run stops taking new work after copying this many bytes'),
        minFreeBytes: z.number().int().min(0).default(2 ** 30).describe('a node with less free space takes no new copies'),
        scrubBytesPerSec: z.number().int().min(1).default(50 * 2 ** 20).describe('scrub read rate limit'),
        claimTtlSec: z.number().int().min(10).default(600).describe('a claim on a copy expires after this long (crashed replicator)'),
        copyBytesPerSec: z.number().int().min(0).default(0).describe('read rate limit of one copy in bytes/s (0 = unlimited), to spare a busy NFS network'),
        trimSurplus: z.boolean().default(false).describe('every replicate run removes surplus copies of over-replicated files (lowest rendezvous weight first, never below the target); false (default): they are reported, and removed only by `replicate --trim`'),
      })
      .strict()
      .default({ concurrency: 4, budgetSec: 50, budgetBytes: 50 * 2 ** 30, minFreeBytes: 2 ** 30, scrubBytesPerSec: 50 * 2 ** 20, claimTtlSec: 600, copyBytesPerSec: 0, trimSurplus: false }),
    api: z
      .object({
        host: z.string().default('127.0.0.1').describe('listen address'),
        port: z.number().int().min(0).max(65535).default(8740).describe('listen port'),
        tls: z
          .object({ cert: absolutePath.describe('PEM certificate file'), key: absolutePath.describe('PEM private key file') })
          .strict()
          .optional()
          .describe('serve HTTPS; absent = plain HTTP (loopback or behind a proxy)'),
        dashboardToken: z.string().min(16).optional().describe('read-only token for the dashboard when not on loopback'),
        requestLogRows: z.number().int().min(100).default(100_000).describe('bound of the API request log table'),
        trustProxy: z.boolean().default(false).describe('take the client address from X-Forwarded-For'),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8740, requestLogRows: 100_000, trustProxy: false }),
    backup: z
      .object({
        apiUrls: z.array(z.string().regex(/^https?:\/\//, 'must be an http(s) URL')).default([]).describe('central API URLs, tried in order'),
        token: z.string().min(16).optional().describe('this backup node\'s token (from `geogridfs backup-node add`)'),
        folder: absolutePath.optional().describe('where backups are kept'),
        minFreeBytes: z.number().int().min(0).default(5 * 2 ** 30).describe('stop downloading when free space would drop below this'),
        deletion: z.enum(['keep', 'trash', 'delete']).default('trash').describe('what a deletion on the grid does here: keep, move to the dated trash folder .geogridfs/trash/YYYY-MM-DD/, delete'),
        concurrency: z.number().int().min(1).max(32).default(4).describe('downloads at once'),
        caFile: absolutePath.optional().describe('CA certificate to trust for the API (self-signed TLS)'),
      })
      .strict()
      .default({ apiUrls: [], minFreeBytes: 5 * 2 ** 30, deletion: 'trash', concurrency: 4 }),
    log: z
      .object({
        level: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('lowest level logged'),
        format: z.enum(['auto', 'json', 'pretty']).default('auto').describe('auto = pretty on a terminal, JSON lines otherwise'),
      })
      .strict()
      .default({ level: 'info', format: 'auto' }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (cfg.host.node !== undefined && !(cfg.host.node in cfg.nodes)) {
      ctx.addIssue({ code: 'custom', path: ['host', 'node'], message: `"${cfg.host.node}" is not a key of nodes` });
    }
    const paths = Object.entries(cfg.nodes);
    for (const [a, pa] of paths) {
      for (const [b, pb] of paths) {
        if (a < b && (pa === pb || pa.startsWith(pb.replace(/\/$/, '') + '/') || pb.startsWith(pa.replace(/\/$/, '') + '/'))) {
          ctx.addIssue({ code: 'custom', path: ['nodes', b], message: `path overlaps node "${a}"` });
        }
      }
    }
    const names = new Set<string>();
    cfg.classes.forEach((c, i) => {
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['classes', i, 'name'], message: `duplicate class "${c.name}"` });
      names.add(c.name);
    });
  });

/** What a user writes in config.ts (defaults may be omitted). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration with every default filled in. */
export type Config = z.output<typeof configSchema> & { dataDir: string; configFile: string | null };
export type FileClass = z.output<typeof classSchema>;
export const PLACEMENT_POLICIES = placementPolicies;
export const READ_POLICIES = readPolicies;
