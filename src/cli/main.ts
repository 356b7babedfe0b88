/**
 * `geogridfs` entry point: one yargs program, one file per command.
 * `runCli` never calls process.exit: it returns the exit code (0 ok,
 * 1 failure, 2 usage error) and writes only to the streams it is given.
 */
import yargs, { type Argv } from 'yargs';
import type { CliIo, GlobalArgs } from './context.js';
import { printErr } from './context.js';
import type { Command } from './command.js';
import { isGeoError } from '../util/errors.js';
import { COMMANDS } from './commands.js';

class UsageError extends Error {}

/** Attach a Command (and, through its builder, its sub-commands) to a yargs program. */
export function attach(y: Argv<GlobalArgs>, cmd: Command<any>, io: CliIo, result: { code: number | null; promise: Promise<void> | null }): Argv<GlobalArgs> {
  return y.command(
    cmd.command,
    cmd.describe,
    (sub: Argv<GlobalArgs>) => {
      let built = cmd.builder(sub, io);
      for (const child of cmd.subcommands ?? []) built = attach(built, child, io, result);
      return cmd.handler ? built : built.demandCommand(1, 'give a sub-command (see --help)');
    },
    cmd.handler
      ? (args: GlobalArgs) => {
          result.promise = cmd.handler!(args, io).then((code) => {
            result.code = code;
          });
        }
      : undefined,
  );
}

/** Run the CLI in-process. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const result: { code: number | null; promise: Promise<void> | null } = { code: null, promise: null };
  let y: Argv<GlobalArgs> = yargs(argv)
    .scriptName('geogridfs')
    .usage('$0 <command> [options]\n\nGeoGridFS: several storage nodes shown as one POSIX tree, with PostgreSQL metadata.')
    .option('config', { alias: 'c', type: 'string', describe: 'config file (default: $GEOGRIDFS_CONFIG, then ./config.ts)', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'only warnings and errors', global: true })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'debug logging', global: true })
    .strict()
    .recommendCommands()
    .demandCommand(1, 'give a command (see --help)')
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(110, (io.stdout as { columns?: number }).columns ?? 100))
    .exitProcess(false)
    .fail((msg: string | null, err: Error | null) => {
      if (err) throw err;
      throw new UsageError(msg ?? 'usage error');
    }) as unknown as Argv<GlobalArgs>;
  for (const cmd of COMMANDS) y = attach(y, cmd, io, result);
  let helpText = '';
  try {
    await y.parseAsync(argv, {}, (err: Error | null | undefined, _argv: unknown, output: string) => {
      if (output && !err) helpText = output;
      if (err && output) helpText = output;
    });
    if (result.promise) await result.promise;
    if (helpText) io.stdout.write(helpText.endsWith('\n') ? helpText : helpText + '\n');
    return result.code ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      if (helpText) io.stderr.write(helpText + '\n');
      printErr(io, `geogridfs: ${err.message}`);
      return 2;
    }
    if (isGeoError(err)) {
      printErr(io, `geogridfs: ${err.message}`);
      return err.exitCode;
    }
    printErr(io, `geogridfs: unexpected error: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
