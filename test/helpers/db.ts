/**
 * Test databases: one real PostgreSQL server (the embedded one, shared by
 * every test process through the same code path users get) under
 * $GEOGRIDFS_TEST_DATA (default /tmp/geogridfs-test), and a fresh database
 * per test, dropped at teardown.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ensureEmbedded } from '../../src/embedded/server.js';
import { MetaStore } from '../../src/meta/store.js';
import { migrate } from '../../src/meta/migrate.js';

export const TEST_DATA = process.env.GEOGRIDFS_TEST_DATA ?? '/tmp/geogridfs-test';

interface Tap {
  teardown(fn: () => unknown): void;
}

/** URL of the shared test server's maintenance database. */
async function adminUrl(): Promise<string> {
  const info = await ensureEmbedded(TEST_DATA);
  const u = new URL(info.url);
  u.pathname = '/postgres';
  return u.toString();
}

/** Create an empty database for this test; returns its URL. Dropped at teardown. */
export async function createTestDatabase(t: Tap): Promise<string> {
  const admin = await adminUrl();
  const name = `t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  t.teardown(async () => {
    if (process.env.GEOGRIDFS_TEST_KEEP_DB) return; // kept for a post-mortem (drop it by hand)
    const d = new pg.Client({ connectionString: admin });
    await d.connect();
    await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await d.end();
  });
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A migrated database and an open store on it (closed at teardown). */
export async function testStore(t: Tap): Promise<{ store: MetaStore; url: string }> {
  const url = await createTestDatabase(t);
  const store = await MetaStore.connect(url, { poolSize: 5 });
  t.teardown(() => store.close());
  await migrate(store);
  return { store, url };
}

/**
 * A scratch folder (mode 0755, so that the unprivileged user an embedded
 * PostgreSQL runs as can enter it when tests run as root). Not removed
 * automatically: tests may inspect it after a failure.
 */
export async function scratchDir(prefix = 'ggfs-'): Promise<string> {
  const base = path.join(os.tmpdir(), 'geogridfs-scratch');
  await mkdir(base, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(path.join(base, prefix));
  await chmod(dir, 0o755);
  return dir;
}

/**
 * Write a config file (TypeScript, as users do) into `dir` and return its
 * path. `body` is the object literal's contents.
 */
export async function writeConfig(dir: string, body: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, 'config.ts');
  await writeFile(file, `import type { ConfigInput } from './src/config/schema.js';\nconst config: ConfigInput = ${JSON.stringify(body, null, 2)};\nexport default config;\n`);
  return file;
}
