#!/usr/bin/env node
import { Command } from 'commander';
import { CliError } from './client';
import * as batch from './commands/batch';
import * as generate from './commands/generate';
import * as keys from './commands/keys';
import * as status from './commands/status';
import * as webhooks from './commands/webhooks';

const program = new Command('imagegen')
  .description('imagegen from the command line (IMAGEGEN_URL, IMAGEGEN_API_KEY)')
  .option('--url <url>', 'the API (default: IMAGEGEN_URL or http://localhost:3000)')
  .option('--api-key <key>', 'the API key (default: IMAGEGEN_API_KEY)')
  .showHelpAfterError();
for (const command of [generate, batch, status, keys, webhooks]) command.register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // a clear line, never a stack trace
  console.error(`imagegen: ${err instanceof CliError ? err.message : (err as Error)?.message ?? String(err)}`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
});
