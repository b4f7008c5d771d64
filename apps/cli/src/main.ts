#!/usr/bin/env node
import { Command } from 'commander';
import { register as registerKeys } from './commands/keys';

const program = new Command('imagegen').description('imagegen command line').showHelpAfterError();
registerKeys(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // a clear line, never a stack trace
  process.stderr.write(`imagegen: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
