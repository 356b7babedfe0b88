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
fs.writeFileSync(path.join(outDir, 'geogridfs-patches'), 'utimens-mtime utime-omit caller-ids\n');
console.log(`build-fuse-native: built ${out} (fuse-native ${version} + geogridfs fixes)`);
