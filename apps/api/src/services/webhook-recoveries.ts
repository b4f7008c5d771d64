import { Job } from 'bullmq';
import type { z } from 'zod';
import {
  newRecoveryId,
  recoveryJobOptions,
  recoveryProgressSchema,
  recoveryResultSchema,
  redisTimeMs,
  WEBHOOK_JOBS,
  type BatchRecord,
  type batchRedeliverSchema,
  type RecoverWebhooksJobData,
  type webhookRecoverSchema,
  type webhookRecoverySchema,
} from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem, invalid, notFound } from '../http/problem';

type Recovery = z.output<typeof webhookRecoverySchema>;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Recoveries of a tenant's webhook deliveries: each is a `recover` job on the webhooks queue
 * (its id the recovery's), run by a worker in the background; this reads and starts them.
 */
export class WebhookRecoveries {
  constructor(private readonly ctx: ApiContext) {}

  /** Where a recovery is followed: absolute, as every URL the API hands out. */
  url(id: string): string {
    return `${this.ctx.config.PUBLIC_BASE_URL}/v1/webhooks/recoveries/${id}`;
  }

  /**
   * Starts a recovery of what ended from `since` to `until` (at the latest now, read from Redis,
   * so a delivery sent again and failing again after the start is not met twice).
   */
  async start(tenant: string, body: z.output<typeof webhookRecoverSchema>): Promise<Recovery> {
    const now = await redisTimeMs(this.ctx.redis);
    const since = Date.parse(body.since);
    const until = Math.min(body.until === undefined ? now : Date.parse(body.until), now);
    if (since > until) throw invalid('since must not be after until (nor after now)', [{ path: 'since', message: 'is after until (or now)' }]);
    // asked again while it runs (a retry whose answer was lost): the same start and states, and the same end if one was given
    const same = (r: RecoverWebhooksJobData) => 'since' in r && r.since === since && sameStates(r.states, body.states) && (body.until === undefined || r.until === until);
    return this.enqueue({ tenant, since, until, states: body.states, createdAt: now }, same);
  }

  /** Starts a redelivery of a batch's deliveries (its items' and its own) now in one of `states`. */
  async startBatch(batch: BatchRecord, body: z.output<typeof batchRedeliverSchema>): Promise<Recovery> {
    const same = (r: RecoverWebhooksJobData) => 'batchId' in r && r.batchId === batch.id && sameStates(r.states, body.states);
    return this.enqueue({ tenant: batch.tenant, batchId: batch.id, states: body.states, createdAt: await redisTimeMs(this.ctx.redis) }, same);
  }

  /**
   * One recovery runs per tenant at a time, whatever its scope: each holds a webhooks worker slot
   * while it reads. Asking while one runs gets that one if it is the `same` as asked (so a client
   * retrying a start follows the one it made), else a 409 naming it.
   */
  private async enqueue(asked: RecoverWebhooksJobData, same: (running: RecoverWebhooksJobData) => boolean): Promise<Recovery> {
    const id = newRecoveryId();
    const data = WEBHOOK_JOBS.recover.schema.parse(asked);
    const job = await this.ctx.queues.webhooks.add(WEBHOOK_JOBS.recover.name, data, { ...recoveryJobOptions(id), deduplication: { id: `recover:${data.tenant}` } });
    if (job.id !== id) {
      // (the job add answers with what was asked, under the running one's id: read the running one itself)
      const running = await this.load(data.tenant, job.id as string);
      if (running && same(running.data)) {
        const current = await present(running.job, running.data);
        if (current.status === 'running') return current;
      }
      throw new HttpProblem(409, 'Conflict', `Recovery ${job.id} is still running; follow it at ${this.url(job.id as string)} and ask again once it has ended`, undefined, { Location: this.url(job.id as string) });
    }
    return view(id, data, 'running', { scanned: 0, redelivered: 0 });
  }

  /** The tenant's recovery of that id; another tenant's reads exactly like an unknown one. */
  async get(tenant: string, id: string): Promise<Recovery> {
    const found = /^rcv_[a-z0-9]+$/.test(id) ? await this.load(tenant, id) : null;
    if (!found) throw notFound(`Recovery ${id}`);
    return present(found.job, found.data);
  }

  /** The tenant's recovery job of that id and its scope; null for another tenant's, or none. */
  private async load(tenant: string, id: string): Promise<{ job: Job; data: RecoverWebhooksJobData } | null> {
    const job = await Job.fromId(this.ctx.queues.webhooks, id);
    const data = job?.name === WEBHOOK_JOBS.recover.name ? WEBHOOK_JOBS.recover.schema.safeParse(job.data) : null;
    return job && data?.success && data.data.tenant === tenant ? { job, data: data.data } : null;
  }
}

/** A recovery as its job stands: running, or completed or failed with its counts. */
async function present(job: Job, data: RecoverWebhooksJobData): Promise<Recovery> {
  const id = job.id as string;
  const state = await job.getState();
  if (state === 'completed') {
    const result = recoveryResultSchema.safeParse(job.returnvalue);
    if (result.success) return view(id, data, 'completed', result.data, result.data.finishedAt);
  }
  const progress = recoveryProgressSchema.safeParse(job.progress);
  const counts = progress.success ? progress.data : { scanned: 0, redelivered: 0 };
  if (state === 'failed') return view(id, data, 'failed', counts, job.finishedOn);
  return view(id, data, 'running', counts);
}

const sameStates = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((s) => b.includes(s));

function view(id: string, data: RecoverWebhooksJobData, status: Recovery['status'], counts: { scanned: number; redelivered: number }, finishedAt?: number): Recovery {
  const common = {
    id,
    status,
    scanned: counts.scanned,
    redelivered: counts.redelivered,
    createdAt: iso(data.createdAt),
    ...(finishedAt !== undefined ? { finishedAt: iso(finishedAt) } : {}),
  };
  return 'batchId' in data ? { ...common, batchId: data.batchId, states: data.states } : { ...common, since: iso(data.since), until: iso(data.until), states: data.states };
}
