import { z } from 'zod';
import { DELIVERY_STATES } from './schemas/delivery';
import type { Priority } from './schemas/request';

/**
 * The one catalog of queues, job names and payloads. Producers and consumers
 * both go through it, and consumers re-validate what they dequeue.
 */
export const QUEUES = {
  generate: 'generate',
  maintenance: 'maintenance',
  webhooks: 'webhooks',
} as const;
export const generateJobSchema = z.strictObject({
  generationId: z.string().regex(/^gen_[A-Za-z0-9]+$/),
  tenant: z.string().min(1),
  /** Set for batch items: the transition moves the batch's counts with the item's status. */
  batchId: z.string().regex(/^batch_[A-Za-z0-9]+$/).optional(),
  /** The submitting request's id, so the worker's log lines of this generation carry it too. */
  requestId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/).optional(),
});
export type GenerateJobData = z.output<typeof generateJobSchema>;
/** A generate job's data as producers write it. */
export type GenerateJobInput = z.input<typeof generateJobSchema>;

/** Retention and repair: removes what finished generations left once due (and stale temporary files), ends orphaned records. Scheduled, never enqueued by clients. */
export const sweepJobSchema = z.strictObject({});

/**
 * Name a generate job shows in the dashboard: `generate` and what tells it apart (a short topic,
 * or the batch and index). Workers go by the queue and the payload, never by this name.
 */
export function generateJobName(label: string): string {
  // by code points: a cut between the halves of a surrogate pair would store a broken character
  const chars = Array.from(label.replace(/\s+/g, ' ').trim());
  return `generate · ${chars.length > 48 ? `${chars.slice(0, 47).join('')}…` : chars.join('')}`;
}

export const JOBS = {
  generate: { queue: QUEUES.generate, name: 'generate', schema: generateJobSchema },
  sweep: { queue: QUEUES.maintenance, name: 'sweep', schema: sweepJobSchema },
} as const;

/** BullMQ priority: lower number runs first; 0 would mean "no priority" and skip ordering. */
export const PRIORITY_VALUE: Record<Priority, number> = { high: 1, normal: 5, low: 10 };


/** Name of the backoff strategy workers register: exponential with jitter, Retry-After wins when longer. */
export const BACKOFF_TYPE = 'imagegen';

export interface GenerateJobPolicy {
  maxAttempts: number;
  backoffMs: number;
  /** Finished jobs never outlive their records. */
  retentionSeconds: number;
}

/** Options of every generate job. The generation id is the job id, so enqueueing twice is a no-op. */
export function generateJobOptions(generationId: string, priority: Priority, policy: GenerateJobPolicy) {
  const kept = finishedJobsKeptSeconds(QUEUES.generate, policy.retentionSeconds);
  return {
    jobId: generationId,
    attempts: policy.maxAttempts,
    backoff: { type: BACKOFF_TYPE, delay: policy.backoffMs },
    priority: PRIORITY_VALUE[priority],
    // records outlive jobs: finished jobs are trimmed, the generation stays readable
    removeOnComplete: { age: kept.completed, count: 10_000 },
    removeOnFail: { age: kept.failed, count: 10_000 },
  };
}

/** Batch items run after every single generation, whatever its priority. */
export const BATCH_ITEM_PRIORITY = 50;

/** BullMQ's largest priority. */
const MAX_PRIORITY = 2_097_152;

/**
 * Options of a batch item's generate job: as any generation's, behind the single ones. Among
 * batch items, one released while its tenant had fewer items in flight (`tenantInFlight`) runs
 * first: a small batch of one tenant passes the items another tenant's big batch already has
 * waiting in the queue, instead of queueing behind them.
 */
export function batchItemJobOptions(generationId: string, policy: GenerateJobPolicy, tenantInFlight = 0) {
  return { ...generateJobOptions(generationId, 'low', policy), priority: Math.min(MAX_PRIORITY, BATCH_ITEM_PRIORITY + Math.max(0, Math.floor(tenantInFlight))) };
}

/** A generation's webhook without `events` gets these. */
export const DEFAULT_GENERATION_WEBHOOK_EVENTS = ['generation.completed', 'generation.failed'] as const;

/** Webhook deliveries: one job per delivery run; the frozen body lives in the delivery log. */
export const deliverWebhookJobSchema = z.strictObject({
  deliveryId: z.string().regex(/^dlv_[a-z0-9]+$/),
  /** The generation (or batch) whose log holds the delivery. */
  subject: z.string().regex(/^(gen|batch)_[A-Za-z0-9]+$/),
  tenant: z.string().min(1),
  /** Endpoint host:port, for the per-host bound and circuit; never the full URL (it may carry tokens). */
  host: z.string().min(1).max(300),
  /** 0 for the first dispatch, +1 per redelivery; a job of an older run does nothing. */
  run: z.number().int().min(0),
  /** Attempts of this run made before the job (the dispatcher's first try); they count toward the schedule. */
  attemptsBefore: z.number().int().min(0).max(8).default(0),
});
export type DeliverWebhookJobData = z.output<typeof deliverWebhookJobSchema>;
/** A deliver job's data as producers write it. */
export type DeliverWebhookJobInput = z.input<typeof deliverWebhookJobSchema>;

/**
 * A deliver job's progress, about its attempt number `attempt`: how often it has failed on our
 * side (a Redis step, not the endpoint), and, while it goes on after letting go of the job, until
 * when (ms, Redis time) the job waits for it. Kept as progress rather than data, which a worker
 * of the release before would refuse.
 */
export const deliverProgressSchema = z.object({
  attempt: z.number().int().min(1),
  unsettled: z.number().int().min(1).optional(),
  inFlightUntil: z.number().optional(),
});
export type DeliverProgress = z.output<typeof deliverProgressSchema>;

/**
 * What a deliver job returns: the state its delivery was left in (with the endpoint's status), or
 * why it had nothing to do: `stale` (another run carries it), `gone` (its log expired), `missing`.
 */
export const deliverResultSchema = z.object({
  outcome: z.enum([...DELIVERY_STATES, 'stale', 'gone', 'missing']),
  status: z.number().int().optional(),
});
export type DeliverResult = z.output<typeof deliverResultSchema>;

/** Delivery states a recovery sends again: those a delivery ends in without arriving. */
export const RECOVERABLE_STATES = ['failed', 'exhausted'] as const;
export type RecoverableState = (typeof RECOVERABLE_STATES)[number];
export const isRecoverable = (state: string): state is RecoverableState => (RECOVERABLE_STATES as readonly string[]).includes(state);

/** Delivery states a batch's redelivery may ask for: those that did not arrive, and those waiting for a retry (sent now). */
export const BATCH_REDELIVERABLE_STATES = [...RECOVERABLE_STATES, 'pending'] as const;

/**
 * A tenant's recovery of deliveries that did not arrive, run in the background, in one of two
 * scopes: a time window (every delivery of the tenant that ended failed or exhausted between
 * `since` and `until`, ms, Redis time) or a batch (every delivery of its items, then its own, now
 * in one of `states`). Each found starts a new run. Its progress (RecoveryProgress) lets a
 * recovery that was interrupted go on where it stopped.
 */
export const recoverWindowJobSchema = z.strictObject({
  tenant: z.string().min(1),
  since: z.number().int().min(0),
  until: z.number().int().min(0),
  states: z.array(z.enum(RECOVERABLE_STATES)).min(1),
  /** When it was asked for (ms, Redis time). */
  createdAt: z.number().int().min(0),
});
export const recoverBatchJobSchema = z.strictObject({
  tenant: z.string().min(1),
  batchId: z.string().regex(/^batch_[A-Za-z0-9]+$/),
  states: z.array(z.enum(BATCH_REDELIVERABLE_STATES)).min(1),
  createdAt: z.number().int().min(0),
});
export const recoverWebhooksJobSchema = z.union([recoverWindowJobSchema, recoverBatchJobSchema]);
export type RecoverWindowJobData = z.output<typeof recoverWindowJobSchema>;
export type RecoverBatchJobData = z.output<typeof recoverBatchJobSchema>;
export type RecoverWebhooksJobData = z.output<typeof recoverWebhooksJobSchema>;

/**
 * How far a recovery got: deliveries looked at and sent, and where it read up to (`null`: nowhere
 * yet): the ended time of a window, the items read of a batch.
 */
export const recoveryProgressSchema = z.object({
  scanned: z.number().int().min(0),
  redelivered: z.number().int().min(0),
  through: z.number().int().nullable(),
});
export type RecoveryProgress = z.output<typeof recoveryProgressSchema>;

/** What a finished recovery returns: its final counts and when it ended (ms, Redis time). */
export const recoveryResultSchema = recoveryProgressSchema.extend({ finishedAt: z.number().int() });
export type RecoveryResult = z.output<typeof recoveryResultSchema>;

export const WEBHOOK_JOBS = {
  deliver: { queue: QUEUES.webhooks, name: 'deliver', schema: deliverWebhookJobSchema },
  recover: { queue: QUEUES.webhooks, name: 'recover', schema: recoverWebhooksJobSchema },
} as const;

const DAY_SECONDS = 24 * 3600;

/** A recovery job is kept (and readable) this long after it ends. */
export const RECOVERY_KEPT_SECONDS = DAY_SECONDS;

/** Failed delivery jobs are kept this long for the dashboard (the delivery log keeps the history). */
const FAILED_DELIVERY_KEPT_SECONDS = DAY_SECONDS;

/**
 * How long finished jobs of a queue are kept at most, by state: never longer than the records
 * they belong to. BullMQ trims by age only when another job of the same queue finishes, so the
 * retention sweep removes whatever a quiet queue has kept past this.
 */
export function finishedJobsKeptSeconds(queue: string, retentionSeconds: number): { completed: number; failed: number } {
  const kept =
    queue === QUEUES.generate
      ? { completed: DAY_SECONDS, failed: 7 * DAY_SECONDS }
      : queue === QUEUES.webhooks
        ? // completed: recoveries (a delivery's job goes as it completes); failed: recoveries and deliveries
          { completed: RECOVERY_KEPT_SECONDS, failed: Math.max(RECOVERY_KEPT_SECONDS, FAILED_DELIVERY_KEPT_SECONDS) }
        : { completed: retentionSeconds, failed: retentionSeconds };
  return { completed: Math.min(kept.completed, retentionSeconds), failed: Math.min(kept.failed, retentionSeconds) };
}

/** Options of a recovery job: its id is the recovery's; retried from where it stopped. */
export function recoveryJobOptions(recoveryId: string) {
  return {
    jobId: recoveryId,
    attempts: 5,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { age: RECOVERY_KEPT_SECONDS },
    removeOnFail: { age: RECOVERY_KEPT_SECONDS },
  };
}

/** Name of the backoff strategy delivery workers register: the retry schedule, decided per attempt. */
export const WEBHOOK_BACKOFF_TYPE = 'webhook';

/** Delays before each webhook retry: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (times WEBHOOK_RETRY_SCALE). */
export const WEBHOOK_RETRY_SCHEDULE_MS = [0, 5_000, 5 * 60_000, 30 * 60_000, 2 * 3600_000, 5 * 3600_000, 10 * 3600_000, 10 * 3600_000] as const;

/** The deliver job of a redelivery: run `run` of the delivery, its host from its URL (never the URL itself). */
export function redeliveryJob(delivery: { id: string; subject: string; tenant: string; url: string }, run: number) {
  return {
    name: WEBHOOK_JOBS.deliver.name,
    data: { deliveryId: delivery.id, subject: delivery.subject, tenant: delivery.tenant, host: new URL(delivery.url).host, run } satisfies DeliverWebhookJobInput,
    opts: webhookJobOptions(delivery.id, run),
  };
}

/** Attempts of one delivery run: the first, then one per step of the schedule. */
export const WEBHOOK_MAX_ATTEMPTS = WEBHOOK_RETRY_SCHEDULE_MS.length + 1;

/**
 * Options of a delivery job: its attempts are what is left of the webhook schedule after
 * `attemptsBefore` attempts made without a job; `delayMs` holds its first attempt back.
 */
export function webhookJobOptions(deliveryId: string, run: number, attemptsBefore = 0, delayMs = 0) {
  return {
    // the first run's job id is the delivery id, so dispatching the same outbox entry twice is a no-op
    jobId: run === 0 ? deliveryId : `${deliveryId}-r${run}`,
    attempts: WEBHOOK_MAX_ATTEMPTS - attemptsBefore,
    ...(delayMs > 0 ? { delay: delayMs } : {}),
    backoff: { type: WEBHOOK_BACKOFF_TYPE },
    // the delivery log keeps the history; a job dispatched again after removal finds its delivery done
    removeOnComplete: true,
    removeOnFail: { age: FAILED_DELIVERY_KEPT_SECONDS, count: 1000 },
  };
}
