/**
 * Finds, compiles and validates config.ts.
 *
 * Where: `--config FILE`, else $GEOGRIDFS_CONFIG, else ./config.ts; with none
 * of them present the defaults are used (embedded PostgreSQL, no nodes).
 * A TypeScript config is transpiled by esbuild (milliseconds; types only
 * stripped) — the CLI itself is compiled JavaScript.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { configSchema, type Config } from './schema.js';
import { GeoError } from '../util/errors.js';
import { pathExists } from '../util/host.js';

export interface LoadOptions {
  /** explicit --config value */
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Default local state folder when config.dataDir is absent. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GEOGRIDFS_DATA_DIR) return path.resolve(env.GEOGRIDFS_DATA_DIR);
  if (process.getuid?.() === 0) return '/var/lib/geogridfs';
  return path.join(env.XDG_DATA_HOME ?? path.join(os.homedir(), '.local', 'share'), 'geogridfs');
}

/** Locate the config file; null when none is configured and ./config.ts is absent. */
export async function findConfigFile(opts: LoadOptions): Promise<string | null> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.configPath ?? env.GEOGRIDFS_CONFIG;
  if (explicit) {
    const p = path.resolve(cwd, explicit);
    if (!(await pathExists(p))) throw new GeoError('CONFIG_NOT_FOUND', `config file not found: ${p}`);
    return p;
  }
  const local = path.join(cwd, 'config.ts');
  return (await pathExists(local)) ? local : null;
}

/** Import a config module (.ts/.mts transpiled by esbuild, .js/.mjs imported, .json parsed). */
async function importConfigModule(file: string): Promise<unknown> {
  const ext = path.extname(file);
  if (ext === '.json') return JSON.parse(await readFile(file, 'utf8'));
  if (ext === '.js' || ext === '.mjs') {
    const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    return mod.default;
  }
  if (ext !== '.ts' && ext !== '.mts') throw new GeoError('CONFIG_INVALID', `${file}: config must be .ts, .mts, .js, .mjs or .json`);
  const { transform } = await import('esbuild');
  const source = await readFile(file, 'utf8');
  let code: string;
  try {
    code = (await transform(source, { loader: 'ts', format: 'esm', sourcefile: file, target: 'node20' })).code;
  } catch (err) {
    throw new GeoError('CONFIG_INVALID', `${file}: does not compile: ${(err as Error).message.split('\n')[0]}`);
  }
  const url = 'data:text/javascript;base64,' + Buffer.from(code).toString('base64');
  try {
    const mod = (await import(url)) as { default?: unknown };
    return mod.default;
  } catch (err) {
    throw new GeoError('CONFIG_INVALID', `${file}: failed to evaluate: ${(err as Error).message}`);
  }
}

/** Render a zod issue path as a key name: `backup.apiUrls[0]`. */
function keyName(p: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of p) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(top level)';
}

/**
 * Validate a raw config object. Throws GeoError CONFIG_INVALID whose message
 * lists every bad key by name (never its value, which may be a secret).
 */
export function validateConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  if (raw === undefined || raw === null || typeof raw !== 'object') {
    throw new GeoError('CONFIG_INVALID', `${source}: must export default an object (export default { ... })`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `${keyName([...issue.path, k])}: unknown key`).join('\n  ');
      }
      return `${keyName(issue.path)}: ${issue.message}`;
    });
    throw new GeoError('CONFIG_INVALID', `${source}: invalid configuration\n  ${lines.join('\n  ')}`);
  }
  const cfg = parsed.data;
  const base = source.startsWith('/') ? path.dirname(source) : process.cwd();
  const dataDir = cfg.dataDir ? path.resolve(base, cfg.dataDir) : defaultDataDir(env);
  return { ...cfg, dataDir, configFile: source.startsWith('/') ? source : null };
}

/** Find, load and validate the configuration. */
export async function loadConfig(opts: LoadOptions = {}): Promise<Config> {
  const env = opts.env ?? process.env;
  const file = await findConfigFile(opts);
  if (file === null) return validateConfig({}, '(defaults)', env);
  const raw = await importConfigModule(file);
  return validateConfig(raw, file, env);
}
