/**
 * `geogridfs doctor [--fix]`: checks what the mount and the embedded
 * database need on this host, and installs missing Debian packages with --fix.
 */
import { access, constants } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { defineCommand } from './command.js';
import { configFor, print, type CliIo, type GlobalArgs } from './context.js';
import { MetaStore, redactUrl } from '../meta/store.js';
import { migrationStatus } from '../meta/migrate.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Debian packages that fix it */
  packages?: string[];
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (out += d));
    c.on('error', () => resolve({ code: 127, out: `${cmd}: not found` }));
    c.on('close', (code) => resolve({ code, out }));
  });
}

async function which(bin: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin', '/sbin', '/usr/sbin'])) {
    if (await access(`${dir}/${bin}`, constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

async function checks(args: GlobalArgs, io: CliIo): Promise<Check[]> {
  const out: Check[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  out.push({ name: 'node', ok: major > 20 || (major === 20 && minor >= 19), detail: `Node ${process.versions.node} (need ≥ 20.19)` });
  const devFuse = await access('/dev/fuse', constants.R_OK | constants.W_OK).then(() => true, () => false);
  out.push({ name: '/dev/fuse', ok: devFuse, detail: devFuse ? 'present' : 'missing: load the fuse module (modprobe fuse) or give the container --device /dev/fuse' });
  const fusermount = await which('fusermount');
  out.push({ name: 'fusermount', ok: fusermount, detail: fusermount ? 'present' : 'missing', packages: ['fuse'] });
  const ldconfig = await run('/sbin/ldconfig', ['-p']);
  const libfuse2 = /libfuse\.so\.2/.test(ldconfig.out);
  out.push({ name: 'libfuse2', ok: libfuse2, detail: libfuse2 ? 'present' : 'missing (fuse-native\'s addon needs libfuse.so.2)', packages: ['libfuse2'] });
  try {
    const config = await configFor(args, io);
    out.push({ name: 'config', ok: true, detail: config.configFile ?? 'defaults (no config.ts)' });
    try {
      const store = await MetaStore.open(config);
      try {
        const s = await migrationStatus(store);
        const ok = s.pending.length === 0 && s.dbVersion <= s.codeVersion;
        out.push({ name: 'database', ok, detail: `${config.database.url ? redactUrl(config.database.url) : 'embedded'}: schema ${s.dbVersion}/${s.codeVersion}${ok ? '' : ' — run `geogridfs db migrate`'}` });
      } finally {
        await store.close();
      }
    } catch (err) {
      out.push({ name: 'database', ok: false, detail: (err as Error).message });
    }
    for (const [name, root] of Object.entries(config.nodes)) {
      const ok = await access(root, constants.R_OK | constants.W_OK | constants.X_OK).then(() => true, () => false);
      out.push({ name: `node ${name}`, ok, detail: `${root}${ok ? '' : ': not accessible (not mounted?)'}` });
    }
  } catch (err) {
    out.push({ name: 'config', ok: false, detail: (err as Error).message });
  }
  return out;
}

export const doctorCommand = defineCommand<GlobalArgs & { fix?: boolean }>({
  command: 'doctor',
  describe: 'check this host: /dev/fuse, libfuse2, fusermount, Node, config, database, node folders',
  builder: (y) => y.option('fix', { type: 'boolean', describe: 'install missing Debian packages (as root)' }).example('$0 doctor --fix', ''),
  handler: async (args, io) => {
    let results = await checks(args, io);
    const missing = [...new Set(results.filter((c) => !c.ok).flatMap((c) => c.packages ?? []))];
    if (missing.length && args.fix) {
      if (process.getuid?.() !== 0) {
        print(io, `run as root, or: sudo apt-get install -y ${missing.join(' ')}`);
      } else {
        print(io, `installing ${missing.join(' ')} ...`);
        await run('apt-get', ['update', '-qq']);
        const r = await run('apt-get', ['install', '-y', '-qq', ...missing]);
        if (r.code !== 0) print(io, r.out.split('\n').slice(-5).join('\n'));
        results = await checks(args, io);
      }
    }
    for (const c of results) print(io, `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
    const still = [...new Set(results.filter((c) => !c.ok).flatMap((c) => c.packages ?? []))];
    if (still.length && !args.fix) print(io, `fix: ${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y ${still.join(' ')}   (or: geogridfs doctor --fix)`);
    return results.every((c) => c.ok) ? 0 : 1;
  },
});
