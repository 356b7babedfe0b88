/**
 * The shape of one CLI command file: yargs metadata plus an async handler
 * that gets parsed arguments and the io, and returns an exit code.
 */
import type { Argv } from 'yargs';
import type { CliIo, GlobalArgs } from './context.js';

export interface Command<A extends GlobalArgs = GlobalArgs> {
  command: string;
  describe: string;
  /** declare options, positionals, sub-commands and examples */
  builder: (y: Argv<GlobalArgs>, io: CliIo) => Argv<GlobalArgs>;
  /** absent for parent commands whose sub-commands do the work */
  handler?: (args: A, io: CliIo) => Promise<number>;
  /** sub-commands, attached under this one */
  subcommands?: Command<any>[];
}

/** Sub-commands are declared as Commands too and attached by the parent's builder. */
export function defineCommand<A extends GlobalArgs>(c: Command<A>): Command<A> {
  return c;
}
