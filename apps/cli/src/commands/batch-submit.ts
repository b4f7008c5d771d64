import { randomUUID } from 'node:crypto';
import { publicBatchSchema, type PublicBatch } from '@imagegen/shared/schemas';
import { CliError, type ApiClient } from '../client';
import type { PromptItem } from '../prompts';
import { retryableButQuota, retrying } from '../retry';

/**
 * Submits the items as one batch. A Ctrl-C while the request is out does not end the run: the
 * API may already have made (and charged) the batch, and without its id it could not be resumed.
 * The run waits for the answer instead (no more tries are made), and `interrupted()` tells the
 * caller to stop once it has shown the id; a second Ctrl-C ends it at once.
 */
export async function submitBatch(client: ApiClient, items: PromptItem[]): Promise<{ batch: PublicBatch; interrupted: boolean }> {
  const body = items.map((i) => JSON.stringify(i)).join('\n');
  // one key for every try: a submission whose answer was lost is answered again, not made twice
  const headers = { 'Content-Type': 'application/x-ndjson', 'Idempotency-Key': `cli-${randomUUID()}` };
  const stop = new AbortController();
  const onInterrupt = () => {
    if (stop.signal.aborted) {
      console.error('imagegen: stopped before the API confirmed the batch; if it was made, its id is not known here');
      process.exit(130);
    }
    stop.abort();
    console.error('Waiting for the API to confirm the batch, so that it can be resumed (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onInterrupt);
  try {
    const batch = await retrying(() => client.json('/v1/batches', publicBatchSchema, { method: 'POST', headers, body }), stop.signal, undefined, retryableButQuota);
    return { batch, interrupted: stop.signal.aborted };
  } catch (err) {
    if (stop.signal.aborted) throw new CliError(`Interrupted before the API confirmed the batch (${(err as Error).message})`, 130);
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
