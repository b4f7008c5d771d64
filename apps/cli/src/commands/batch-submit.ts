import { randomUUID } from 'node:crypto';
import { publicBatchSchema, type PublicBatch } from '@imagegen/shared/schemas';
import { CliError, type ApiClient } from '../client';
import { listedUnder } from '../listing';
import type { Prompts } from '../prompts';
import { retryableButQuota, retrying } from '../retry';
import { onStop, stopExitCode } from '../stop-signals';

/**
 * Submits the items as one batch. A Ctrl-C while the request is out does not end the run: the
 * API may already have made (and charged) the batch, and without its id it could not be resumed.
 * The run waits for the answer instead (no more tries are made), and `interrupted()` tells the
 * caller to stop once it has shown the id; a second Ctrl-C ends it at once.
 */
export async function submitBatch(client: ApiClient, file: string, { items, lines }: Prompts): Promise<{ batch: PublicBatch; interrupted: boolean }> {
  const body = items.map((i) => JSON.stringify(i)).join('\n');
  // one key for every try: a submission whose answer was lost is answered again, not made twice
  const headers = { 'Content-Type': 'application/x-ndjson', 'Idempotency-Key': `cli-${randomUUID()}` };
  const stop = new AbortController();
  const onInterrupt = () => {
    if (stop.signal.aborted) {
      console.error('imagegen: stopped before the API confirmed the batch; if it was made, its id is not known here');
      process.exit(stopExitCode());
    }
    stop.abort();
    console.error('Waiting for the API to confirm the batch, so that it can be resumed (Ctrl-C again to quit at once)');
  };
  const stopListening = onStop(onInterrupt);
  try {
    const batch = await retrying(() => client.json('/v1/batches', publicBatchSchema, { method: 'POST', headers, body }), stop.signal, undefined, retryableButQuota);
    return { batch, interrupted: stop.signal.aborted };
  } catch (err) {
    if (stop.signal.aborted) throw new CliError(`Interrupted before the API confirmed the batch (${(err as Error).message})`, stopExitCode());
    throw err instanceof CliError && err.problem?.errors.length ? byLine(err, file, lines) : err;
  } finally {
    stopListening();
  }
}

/**
 * The API names a bad item by its place in the batch (`3.style`); the user knows the file: each
 * is told by the line it came from, in the file's order.
 */
function byLine(err: CliError, file: string, lines: number[]): CliError {
  const named = err.problem!.errors.map((e) => {
    const [, index, field] = /^(?:items\.)?(\d+)(?:\.(.+))?$/.exec(e.path) ?? [];
    const line = index === undefined ? undefined : lines[Number(index)];
    return { line: line ?? Infinity, text: line === undefined ? `${e.path}: ${e.message}` : `line ${line}: ${field ? `${field}: ` : ''}${e.message}` };
  });
  const list = named.sort((a, b) => a.line - b.line).map((n) => n.text);
  return new CliError(listedUnder(`${file}: ${err.problem!.detail}`, list), err.exitCode, err.retryable, err.status, err.problem);
}
