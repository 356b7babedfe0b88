import t from 'tap';
import { scratchDir } from '../helpers/db.js';
import { cliProcess } from '../helpers/cli.js';
import { embeddedPaths, runningServer } from '../../src/embedded/server.js';

t.test('the embedded server is started once, shared by later processes, and stopped by db stop', async (t) => {
  const dataDir = await scratchDir('embedded-');
  const env = { GEOGRIDFS_DATA_DIR: dataDir, GEOGRIDFS_CONFIG: '' };
  const paths = embeddedPaths(dataDir);
  t.teardown(() => cliProcess(['db', 'stop'], { env, cwd: dataDir }));

  // two processes at once: one initialises and starts, the other waits and shares
  const [a, b] = await Promise.all([cliProcess(['db', 'migrate'], { env, cwd: dataDir }), cliProcess(['db', 'start'], { env, cwd: dataDir })]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  const first = await runningServer(paths);
  t.ok(first, 'server running after the first clients exited');

  const c = await cliProcess(['db', 'status'], { env, cwd: dataDir });
  t.equal(c.code, 0, c.stderr);
  t.match(c.stdout, /schema: version (\d+) of \1 \(up to date\)/); // any number of migrations, all applied
  t.same(await runningServer(paths), first, 'the same server (pid and port) was reused');

  const d = await cliProcess(['db', 'start'], { env, cwd: dataDir });
  t.match(d.stdout, /already running/);

  const stop = await cliProcess(['db', 'stop'], { env, cwd: dataDir });
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, /stopped/);
  t.equal(await runningServer(paths), null, 'stopped');

  const again = await cliProcess(['db', 'status'], { env, cwd: dataDir });
  t.equal(again.code, 0, 'restarts on demand with the data kept');
  t.match(again.stdout, /up to date/);
});
