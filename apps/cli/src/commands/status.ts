import type { Command } from 'commander';
import { publicBatchSchema, publicGenerationSchema } from '@imagegen/shared/schemas';
import { CliError, clientFrom } from '../client';

export function register(program: Command): void {
  program
    .command('status')
    .description('show a generation (gen_…) or a batch (batch_…)')
    .argument('<id>')
    .action(async (id: string) => {
      // an empty id would ask for the list endpoint, whose answer reads as another API's
      if (!id.trim()) throw new CliError('Give the id of a generation (gen_…) or a batch (batch_…)');
      const client = clientFrom(program.opts());
      const path = (kind: string) => `/v1/${kind}/${encodeURIComponent(id)}`;
      const shown = id.startsWith('batch_') ? await client.json(path('batches'), publicBatchSchema) : await client.json(path('generations'), publicGenerationSchema);
      console.log(JSON.stringify(shown, null, 2));
    });
}
