import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { failedDeliveryListSchema, webhookRecoverySchema, webhookSecretSchema } from '@imagegen/shared/schemas';
import { clientFrom, CliError } from '../client';
import { retryableButQuota, retrying } from '../retry';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A point in time: ISO 8601, or how long ago (`90s`, `30m`, `2h`, `7d`). */
export function pointInTime(value: string, now = Date.now()): string {
  const ago = /^(\d+(?:\.\d+)?)([smhd])$/.exec(value.trim());
  if (ago) return new Date(now - Number(ago[1]) * (UNITS[ago[2] as string] as number)).toISOString();
  const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(at)) throw new InvalidArgumentError('give an ISO 8601 time (2026-12-01T09:00:00Z) or how long ago (30m, 2h, 7d)');
  return new Date(at).toISOString();
}

/** `imagegen webhooks …`: the signing secret, the deliveries that did not arrive, and their recovery. */
export function register(program: Command): void {
  const webhooks = program.command('webhooks').description('webhook deliveries');
  webhooks
    .command('secret')
    .description("print the secret your webhooks are signed with (whsec_…), to verify them")
    .option('--rotate', 'make a new one first; the old one keeps signing too for 24 h')
    .action(async (opts: { rotate?: boolean }) => {
      const client = clientFrom(program.opts());
      const { secret } = opts.rotate
        ? await client.json('/v1/webhooks/secret/rotate', webhookSecretSchema, { method: 'POST' })
        : await retrying(() => client.json('/v1/webhooks/secret', webhookSecretSchema));
      if (opts.rotate) process.stderr.write('a new secret: deliveries carry a signature by the old one too for 24 h, so receivers can switch at any time\n');
      console.log(secret);
    });
  webhooks
    .command('failed')
    .description('list the deliveries that did not arrive (failed or exhausted), newest ending first, one JSON line each')
    .option('--state <state>', 'only failed (a 410) or only exhausted (the schedule ran out)')
    .option('--limit <n>', 'at most this many', (v) => {
      if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError('a whole number from 1');
      return Number(v);
    })
    .action(async (opts: { state?: string; limit?: number }) => {
      const client = clientFrom(program.opts());
      let left = opts.limit ?? Number.POSITIVE_INFINITY;
      for (let cursor: string | null = null; left > 0; ) {
        const query: URLSearchParams = new URLSearchParams({ limit: String(Math.min(100, left)), ...(opts.state ? { state: opts.state } : {}), ...(cursor ? { cursor } : {}) });
        const page = await retrying(() => client.json(`/v1/webhooks/deliveries?${query}`, failedDeliveryListSchema));
        for (const row of page.data.slice(0, left)) console.log(JSON.stringify(row));
        left -= page.data.length;
        cursor = page.nextCursor;
        if (cursor === null) break;
      }
    });
  webhooks
    .command('recover')
    .description('send again every delivery that ended failed or exhausted in a time window, or every such delivery of a batch, and follow it to the end')
    .option('--since <time>', 'from when: ISO 8601, or how long ago (30m, 2h, 7d)', (v) => pointInTime(v))
    .option('--until <time>', 'until when (default: now)', (v) => pointInTime(v))
    .option('--batch <id>', "instead of a window: the deliveries of this batch's items and its own")
    .option('--states <states>', 'failed, exhausted (default: both), and with --batch pending (waiting for a retry), comma-separated')
    .option('--no-wait', 'print the recovery and return at once')
    .action(async (opts: { since?: string; until?: string; batch?: string; states?: string; wait: boolean }) => {
      if ((opts.since === undefined) === (opts.batch === undefined)) throw new CliError('give either --since (a time window) or --batch (a batch)');
      if (opts.batch !== undefined && opts.until !== undefined) throw new CliError('--until goes with --since, not with --batch');
      const client = clientFrom(program.opts());
      const states = opts.states ? { states: opts.states.split(',').map((s) => s.trim()) } : {};
      const [path, body] =
        opts.batch !== undefined
          ? [`/v1/batches/${encodeURIComponent(opts.batch)}/deliveries/redeliver`, states]
          : ['/v1/webhooks/recover', { since: opts.since, ...(opts.until ? { until: opts.until } : {}), ...states }];
      // a start whose answer was lost and is made again costs nothing: the API answers the one already running
      let r = await retrying(() => client.json(path, webhookRecoverySchema, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }), undefined, undefined, retryableButQuota);
      if (!opts.wait) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      process.stderr.write('batchId' in r ? `${r.id}: redelivering the deliveries of ${r.batchId}\n` : `${r.id}: recovering deliveries that ended between ${r.since} and ${r.until}\n`);
      let told = '';
      while (r.status === 'running') {
        await sleep(1000);
        const id = r.id;
        r = await retrying(() => client.json(`/v1/webhooks/recoveries/${id}`, webhookRecoverySchema));
        const now = `${r.scanned} looked at, ${r.redelivered} sent again`;
        if (now !== told && r.status === 'running') process.stderr.write(`  ${now}\n`);
        told = now;
      }
      if (r.status !== 'completed') throw new CliError(`${r.id} stopped after ${r.scanned} looked at and ${r.redelivered} sent again; run it again to finish`);
      console.log(`${r.id}: ${r.redelivered} of ${r.scanned} ${'batchId' in r ? 'deliveries looked at' : 'ended deliveries'} sent again`);
    });
}
