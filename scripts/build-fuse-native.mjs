#!/usr/bin/env node
/**
 * Build fuse-native 2.2.6's binding from its own source with three fixes the
 * mount needs, into node_modules/fuse-native/build/Release/fuse.node (where
 * node-gyp-build looks before the prebuilt binary, as `npm rebuild
 * --build-from-source` would put it):
 *
 * 1. utimens passed atime twice: mtime was lost (cp -a, rsync -a, tar).
 * 2. flag_utime_omit_ok: without it libfuse silently drops a utimensat that
 *    sets only one of the two times (touch -m, tar x); UTIME_NOW and
 *    UTIME_OMIT reach JavaScript as 1 and 2 (ms).
 * 3. create, mkdir and symlink also pass the caller's uid and gid
 *    (fuse_get_context), so new entries belong to the user who made them.
 * 4. an attribute cache answered on libfuse's thread: getattr of a path the
 *    mount has put there (geogridfs_statcache_put, from JavaScript, for
 *    entries served from metadata with no writer open) is answered without
 *    the trip to the JavaScript thread (~0.1 ms on this machine: two
 *    cross-thread wake-ups); the mount drops entries whenever its metadata
 *    cache drops or replaces them (own changes, other mounts' NOTIFY, a lost
 *    LISTEN) and when a writer opens. Bounded (cleared when full) and with a
 *    time-out. One mount per process (the table is the process's).
 *
 * Needs gcc, Node's headers (<prefix>/include/node) and libfuse2. With
 * --optional a missing piece is a warning (the prebuilt binary is used and
 * the mount logs what it cannot do).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const optional = process.argv.includes('--optional');
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const require = createRequire(path.join(root, 'package.json'));

function fail(msg) {
  console.error(`build-fuse-native: ${msg}`);
  process.exit(optional ? 0 : 1);
}

let pkgDir;
try {
  pkgDir = path.dirname(require.resolve('fuse-native/package.json'));
} catch {
  fail('fuse-native is not installed');
}
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
if (version !== '2.2.6') fail(`fuse-native ${version}: these patches are for 2.2.6`);

let src = fs.readFileSync(path.join(pkgDir, 'fuse-native.c'), 'utf8');

/** Patch 4: a path -> struct stat table under one mutex (libfuse's threads read it, the JS thread writes it). */
const STATCACHE_C = String.raw`
#include <time.h>

typedef struct statcache_entry {
  struct statcache_entry *next;
  uint64_t hash;
  uint64_t expires_ns;
  struct stat st;
  char path[];
} statcache_entry_t;

#define STATCACHE_BUCKETS 65536
static statcache_entry_t *statcache_table[STATCACHE_BUCKETS];
static pthread_mutex_t statcache_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t statcache_size = 0;
static uint32_t statcache_max = 0; /* 0: off */
static uint64_t statcache_ttl_ns = 0;
static double statcache_hits = 0;
static double statcache_misses = 0;

static uint64_t statcache_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static uint64_t statcache_hash (const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) {
    h ^= (unsigned char) *s++;
    h *= 1099511628211ull;
  }
  return h;
}

static void statcache_clear_locked (void) {
  for (uint32_t i = 0; i < STATCACHE_BUCKETS; i++) {
    statcache_entry_t *e = statcache_table[i];
    while (e) {
      statcache_entry_t *next = e->next;
      free(e);
      e = next;
    }
    statcache_table[i] = NULL;
  }
  statcache_size = 0;
}

static void statcache_remove_locked (const char *path, uint64_t h) {
  statcache_entry_t **pp = &statcache_table[h & (STATCACHE_BUCKETS - 1)];
  while (*pp) {
    statcache_entry_t *e = *pp;
    if (e->hash == h && strcmp(e->path, path) == 0) {
      *pp = e->next;
      free(e);
      statcache_size--;
      return;
    }
    pp = &e->next;
  }
}

/* On libfuse's thread: 1 and *out filled when a live entry is there. */
static int statcache_get (const char *path, struct stat *out) {
  if (!statcache_max) return 0;
  uint64_t h = statcache_hash(path);
  int hit = 0;
  pthread_mutex_lock(&statcache_lock);
  statcache_entry_t **pp = &statcache_table[h & (STATCACHE_BUCKETS - 1)];
  while (*pp) {
    statcache_entry_t *e = *pp;
    if (e->hash == h && strcmp(e->path, path) == 0) {
      if (e->expires_ns > statcache_now()) {
        *out = e->st;
        hit = 1;
      } else {
        *pp = e->next;
        free(e);
        statcache_size--;
      }
      break;
    }
    pp = &e->next;
  }
  if (hit) statcache_hits++;
  else statcache_misses++;
  pthread_mutex_unlock(&statcache_lock);
  return hit;
}

static void populate_stat (uint32_t *ints, struct stat* stat);

/* (maxEntries, ttlMs): 0 entries turns it off (and empties it) */
NAPI_METHOD(geogridfs_statcache_configure) {
  NAPI_ARGV(2)
  NAPI_ARGV_UINT32(max, 0)
  NAPI_ARGV_UINT32(ttl_ms, 1)
  pthread_mutex_lock(&statcache_lock);
  statcache_clear_locked();
  statcache_max = max;
  statcache_ttl_ns = (uint64_t) ttl_ms * 1000000ull;
  pthread_mutex_unlock(&statcache_lock);
  return NULL;
}

/* (path, ints): ints in fuse-native's stat layout (Uint32Array(18)) */
NAPI_METHOD(geogridfs_statcache_put) {
  NAPI_ARGV(2)
  NAPI_ARGV_UTF8_MALLOC(path, 0)
  NAPI_ARGV_BUFFER_CAST(uint32_t *, ints, 1)
  if (ints_len < 18 * sizeof(uint32_t) || !statcache_max) {
    free(path);
    return NULL;
  }
  size_t len = strlen(path);
  statcache_entry_t *e = malloc(sizeof(statcache_entry_t) + len + 1);
  if (!e) {
    free(path);
    return NULL;
  }
  memset(&e->st, 0, sizeof(e->st));
  populate_stat(ints, &e->st);
  memcpy(e->path, path, len + 1);
  free(path);
  e->hash = statcache_hash(e->path);
  pthread_mutex_lock(&statcache_lock);
  statcache_remove_locked(e->path, e->hash);
  if (statcache_size >= statcache_max) statcache_clear_locked();
  e->expires_ns = statcache_now() + statcache_ttl_ns;
  uint32_t b = e->hash & (STATCACHE_BUCKETS - 1);
  e->next = statcache_table[b];
  statcache_table[b] = e;
  statcache_size++;
  pthread_mutex_unlock(&statcache_lock);
  return NULL;
}

NAPI_METHOD(geogridfs_statcache_invalidate) {
  NAPI_ARGV(1)
  NAPI_ARGV_UTF8_MALLOC(path, 0)
  uint64_t h = statcache_hash(path);
  pthread_mutex_lock(&statcache_lock);
  statcache_remove_locked(path, h);
  pthread_mutex_unlock(&statcache_lock);
  free(path);
  return NULL;
}

/* (folder): the folder and every path under it */
NAPI_METHOD(geogridfs_statcache_invalidate_subtree) {
  NAPI_ARGV(1)
  NAPI_ARGV_UTF8_MALLOC(folder, 0)
  size_t len = strlen(folder);
  int root = len == 1 && folder[0] == '/';
  pthread_mutex_lock(&statcache_lock);
  if (root) {
    statcache_clear_locked();
  } else {
    for (uint32_t i = 0; i < STATCACHE_BUCKETS && statcache_size; i++) {
      statcache_entry_t **pp = &statcache_table[i];
      while (*pp) {
        statcache_entry_t *e = *pp;
        if (strncmp(e->path, folder, len) == 0 && (e->path[len] == 0 || e->path[len] == '/')) {
          *pp = e->next;
          free(e);
          statcache_size--;
        } else {
          pp = &e->next;
        }
      }
    }
  }
  pthread_mutex_unlock(&statcache_lock);
  free(folder);
  return NULL;
}

NAPI_METHOD(geogridfs_statcache_clear) {
  pthread_mutex_lock(&statcache_lock);
  statcache_clear_locked();
  pthread_mutex_unlock(&statcache_lock);
  return NULL;
}

/* (Float64Array(3)): hits, misses, entries */
NAPI_METHOD(geogridfs_statcache_stats) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(double *, out, 0)
  if (out_len < 3 * sizeof(double)) return NULL;
  pthread_mutex_lock(&statcache_lock);
  out[0] = statcache_hits;
  out[1] = statcache_misses;
  out[2] = statcache_size;
  pthread_mutex_unlock(&statcache_lock);
  return NULL;
}
`;
const patches = [
  // 1. mtime
  ['  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)', '  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'],
  // 2. UTIME_NOW / UTIME_OMIT as 1 / 2 ms
  ['static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n', 'static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n  if (ts->tv_nsec == UTIME_NOW) return 1;\n  if (ts->tv_nsec == UTIME_OMIT) return 2;\n'],
  ['  if (implemented[op_init]) ops.init = fuse_native_init;\n', '  if (implemented[op_init]) ops.init = fuse_native_init;\n  ops.flag_utime_omit_ok = 1;\n'],
  // 3. caller uid/gid for create, mkdir, symlink
  [
    'FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n',
    'FUSE_METHOD(create, 4, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n  l->uid = fuse_get_context()->uid;\n  l->gid = fuse_get_context()->gid;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n  napi_create_uint32(env, l->uid, &(argv[4]));\n  napi_create_uint32(env, l->gid, &(argv[5]));\n',
  ],
  [
    'FUSE_METHOD_VOID(symlink, 2, 0, (const char *path, const char *dest), {\n  l->path = path;\n  l->dest = dest;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_string_utf8(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));\n',
    'FUSE_METHOD_VOID(symlink, 4, 0, (const char *path, const char *dest), {\n  l->path = path;\n  l->dest = dest;\n  l->uid = fuse_get_context()->uid;\n  l->gid = fuse_get_context()->gid;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_string_utf8(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));\n  napi_create_uint32(env, l->uid, &(argv[4]));\n  napi_create_uint32(env, l->gid, &(argv[5]));\n',
  ],
  [
    'FUSE_METHOD_VOID(mkdir, 2, 0, (const char *path, mode_t mode), {\n  l->path = path;\n  l->mode = mode;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n',
    'FUSE_METHOD_VOID(mkdir, 4, 0, (const char *path, mode_t mode), {\n  l->path = path;\n  l->mode = mode;\n  l->uid = fuse_get_context()->uid;\n  l->gid = fuse_get_context()->gid;\n}, {\n  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n  napi_create_uint32(env, l->uid, &(argv[4]));\n  napi_create_uint32(env, l->gid, &(argv[5]));\n',
  ],
  // 4. the attribute cache (see the header)
  ['// Methods\n', STATCACHE_C + '\n// Methods\n'],
  [
    'FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {\n  l->path = path;\n  l->stat = stat;\n}',
    'FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {\n  if (statcache_get(path, stat)) return 0;\n  l->path = path;\n  l->stat = stat;\n}',
  ],
  [
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_configure)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_put)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_invalidate)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_invalidate_subtree)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_clear)\n  NAPI_EXPORT_FUNCTION(geogridfs_statcache_stats)\n',
  ],
];
for (const [from, to] of patches) {
  if (!src.includes(from)) fail(`fuse-native.c does not contain the expected text: ${JSON.stringify(from.slice(0, 60))}`);
  src = src.replace(from, to);
}

const nodeInclude = [path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) =>
  fs.existsSync(path.join(d, 'node_api.h')),
);
if (!nodeInclude) fail("Node's headers (include/node/node_api.h) not found");
let napiMacros;
let fuseInclude;
try {
  napiMacros = path.dirname(require.resolve('napi-macros/napi-macros.h', { paths: [pkgDir] }));
  fuseInclude = path.join(path.dirname(require.resolve('fuse-shared-library-linux/package.json', { paths: [pkgDir] })), 'libfuse', 'include');
} catch (err) {
  fail(`headers of napi-macros / fuse-shared-library-linux not found: ${err.message}`);
}
const libfuse = ['/lib/x86_64-linux-gnu/libfuse.so.2', '/usr/lib/x86_64-linux-gnu/libfuse.so.2', '/lib/aarch64-linux-gnu/libfuse.so.2', '/usr/lib/libfuse.so.2', '/lib64/libfuse.so.2'].find((f) => fs.existsSync(f));
if (!libfuse) fail('libfuse.so.2 not found (apt-get install libfuse2)');

const outDir = path.join(pkgDir, 'build', 'Release');
fs.mkdirSync(outDir, { recursive: true });
const cfile = path.join(outDir, 'fuse-native-geogridfs.c');
fs.writeFileSync(cfile, src);
const out = path.join(outDir, 'fuse.node');
try {
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-Wno-unused-function', '-Wno-unused-variable', '-D_FILE_OFFSET_BITS=64', `-I${nodeInclude}`, `-I${napiMacros}`, `-I${fuseInclude}`, cfile, '-o', out + '.tmp', libfuse, '-lpthread'], { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (err) {
  fail(`gcc failed: ${err.message}`);
}
fs.renameSync(out + '.tmp', out);
fs.writeFileSync(path.join(outDir, 'geogridfs-patches'), 'utimens-mtime utime-omit caller-ids statcache\n');
console.log(`build-fuse-native: built ${out} (fuse-native ${version} + geogridfs fixes)`);
