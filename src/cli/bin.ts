/**
 * Process wrapper around runCli: real streams, SIGINT/SIGTERM turned into an
 * AbortSignal for long-running commands, exit code set from the result.
 */
import { runCli } from './main.js';

export function main(): void {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 2) {
      process.stderr.write(`geogridfs: ${sig} again, exiting now\n`);
      process.exit(130);
    }
    controller.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd(), signal: controller.signal }).then(
    (code) => {
      process.exitCode = code;
      // long-running commands close their own handles; anything left over must not keep us alive forever
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (err: unknown) => {
      process.stderr.write(`geogridfs: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
