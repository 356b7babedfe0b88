/**
 * GeoGridFS configuration. Copy to config.ts (or point --config /
 * GEOGRIDFS_CONFIG at your copy) and edit. Every key is optional unless said
 * otherwise; the values below are the defaults or examples. An unknown or
 * mistyped key stops every command with a message naming it.
 * The full schema, with types and defaults, is src/config/schema.ts.
 */
import type { ConfigInput } from './src/config/schema.js';

const config: ConfigInput = {
  // Local state: the embedded PostgreSQL cluster, mount journals, locks.
  // Default: /var/lib/geogridfs as root, ~/.local/share/geogridfs otherwise
  // (or $GEOGRIDFS_DATA_DIR). Relative paths are relative to this file.
  dataDir: '/var/lib/geogridfs',

  database: {
    // PostgreSQL URL. Leave it out to use the embedded server, which
    // geogridfs starts on 127.0.0.1 under dataDir and shares between all
    // geogridfs processes of this host (`geogridfs db stop` stops it).
    // url: 'postgresql://geogridfs:secret@db.example.net:5432/geogridfs',
    poolSize: 10, // connections per process
    statementTimeoutMs: 30_000, // server-side limit of one statement
    embeddedPort: 0, // embedded server's port; 0 = a free one chosen at first start
  },

  // Storage node name -> where THIS host sees that node's folder (its NFS mount).
  nodes: {
    node1: '/srv/nodes/node1',
    node2: '/srv/nodes/node2',
    node3: '/srv/nodes/node3',
  },

  host: {
    // On a storage node: which node this host is (the replicator works on it).
    node: 'node1',
    // name: 'web1', // this host's name in logs and claims; default: hostname
  },

  // File classes, in match order: the first pattern matching the path (without
  // the leading '/') decides the class and its targets. Keep a catch-all last.
  classes: [
    { name: 'originals', pattern: 'photos/**/*.{jpg,jpeg,png,tif,raw}', replicaTarget: 3, backupTarget: 2 },
    { name: 'thumbs', pattern: 'thumbs/**', replicaTarget: 1, backupTarget: 0 },
    { name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 },
  ],

  mount: {
    placement: 'mfs', // new files: mfs (most free space), ff (first found), lfs (least free), rand, epff (existing path first)
    readPolicy: 'spread', // which replica serves a read: spread (by path hash), ff, rand
    attrTimeoutSec: 1, // kernel attribute cache lifetime
    opTimeoutSec: 30, // per-operation time-out before the kernel gets ETIMEDOUT
    cacheEntries: 50_000, // in-memory metadata cache bound (entries; about 0.9 KB each: 50k = 45 MB)
    negativeCacheSec: 5, // lifetime of a cached "no such file" (NOTIFY also clears it)
    allowOther: false, // FUSE allow_other (other users may use the mount)
    nativeAttrCache: true, // getattr of cached entries answered on libfuse's thread (the rebuilt binding; ~10x faster stat)
  },

  storage: {
    timeoutMs: 10_000, // one call on a node folder; a node that times out is suspect
    perNodeConcurrency: 8, // calls in flight per node: one hung NFS server cannot take every thread
    suspectMs: 30_000, // how long a suspect node is skipped
    threadPoolSize: 64, // libuv threads for file I/O (UV_THREADPOOL_SIZE)
  },

  replicator: {
    concurrency: 4, // files hashed or copied at once
    budgetSec: 50, // a `replicate` run takes no new work after this (cron: every minute)
    budgetBytes: 50 * 2 ** 30, // ... or after copying this much
    minFreeBytes: 2 ** 30, // a node with less free space takes no new copies
    scrubBytesPerSec: 50 * 2 ** 20, // scrub read rate
    claimTtlSec: 600, // a crashed run's claim on a copy expires after this
    copyBytesPerSec: 0, // read rate limit of one copy (0 = unlimited)
    trimSurplus: false, // true: every run removes surplus copies of over-replicated files (never below the target); false: reported, removed only by `replicate --trim`
  },

  api: {
    host: '127.0.0.1',
    port: 8740,
    // tls: { cert: '/etc/geogridfs/api.crt', key: '/etc/geogridfs/api.key' },
    // dashboardToken: 'a long random string', // required to view the dashboard from off-loopback
    requestLogRows: 100_000,
    trustProxy: false, // true behind a reverse proxy (X-Forwarded-For)
  },

  // On an off-site backup host (which never sees the database):
  backup: {
    apiUrls: ['https://files.example.net:8740'], // tried in order
    // token: 'ggfs_…', // from `geogridfs backup-node add NAME` on the central host
    folder: '/srv/backup',
    minFreeBytes: 5 * 2 ** 30, // stop downloading before the disk gets this full
    deletion: 'trash', // keep | trash (moved to .geogridfs/trash/YYYY-MM-DD/ in the folder) | delete
    concurrency: 4,
    // caFile: '/etc/geogridfs/ca.crt', // to trust a self-signed API certificate
  },

  log: {
    level: 'info', // debug | info | warn | error
    format: 'auto', // auto (pretty on a terminal, JSON lines otherwise) | json | pretty
  },
};

export default config;
