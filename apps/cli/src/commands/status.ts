import type { Command } from 'commander';
import { clientFrom } from '../client';

export function register(program: Command): void {
  program
    .command('status')
    .description('show a generation (gen_…) or a batch (batch_…)')
    .argument('<id>')
    .action(async (id: string) => {
      const client = clientFrom(program.opts());
      const kind = id.startsWith('batch_') ? 'batches' : 'generations';
      console.log(JSON.stringify(await client.json(`/v1/${kind}/${encodeURIComponent(id)}`), null, 2));
    });
}
