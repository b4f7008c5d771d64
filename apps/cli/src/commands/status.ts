import type { Command } from 'commander';
import { publicBatchSchema, publicGenerationSchema } from '@imagegen/shared/schemas';
import { clientFrom } from '../client';

export function register(program: Command): void {
  program
    .command('status')
    .description('show a generation (gen_…) or a batch (batch_…)')
    .argument('<id>')
    .action(async (id: string) => {
      const client = clientFrom(program.opts());
      const path = (kind: string) => `/v1/${kind}/${encodeURIComponent(id)}`;
      const shown = id.startsWith('batch_') ? await client.json(path('batches'), publicBatchSchema) : await client.json(path('generations'), publicGenerationSchema);
      console.log(JSON.stringify(shown, null, 2));
    });
}
