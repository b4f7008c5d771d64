import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  recoveryProgressSchema,
  redeliverFound,
  redeliveryJob,
  redisTimeMs,
  WEBHOOK_JOBS,
  type BatchStore,
  type Delivery,
  type DeliveryLog,
  type DeliveryState,
  type RecoverBatchJobData,
  type RecoveryProgress,
  type RecoveryResult,
  type RecoverWindowJobData,
} from '@imagegen/shared';

/** Ended deliveries (or batch items) read, loaded and sent again per round. */
const PAGE = 500;

export interface RecoveryDeps {
  log: DeliveryLog;
  queue: Queue;
  redis: Redis;
  batches: BatchStore;
}

/** One round of a recovery: the deliveries found, and where the next round reads from. */
interface Page {
  found: Delivery[];
  /** Entries looked at: for a window, its ended deliveries (some since delivered); for a batch, its deliveries in the asked states. */
  scanned: number;
  through: number;
}

/**
 * The `recover` job: reads its scope a page at a time (a window of the tenant's ended deliveries,
 * or a batch's items and then the batch itself) and sends again each delivery found still in one
 * of the asked states (redeliverFound: a new run, only if still as read). Its progress says how
 * far it read, so a recovery cut short (the worker killed, Redis gone) goes on from there when
 * retried; one it had started but not queued yet (a `pending` redelivery run) is queued. A page
 * read again after a cut sends a delivery twice only if `pending` is asked for (it is pending
 * again once sent): the receiver gets the same webhook-id twice.
 */
export async function runRecovery(job: Job, deps: RecoveryDeps): Promise<RecoveryResult> {
  const parsed = WEBHOOK_JOBS.recover.schema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`invalid recover payload: ${parsed.error.message}`);
  const data = parsed.data;
  const saved = recoveryProgressSchema.safeParse(job.progress);
  const progress: RecoveryProgress = saved.success ? saved.data : { scanned: 0, redelivered: 0, through: null };
  const wanted = new Set<DeliveryState>(data.states);
  const pages = 'batchId' in data ? batchPages(deps, data, progress.through) : windowPages(deps.log, data, progress.through);
  for await (const page of pages) {
    // sent again by a recovery that died before it queued the job: queued now (the job id is the run's, so a job that exists is not added twice)
    const started = page.found.filter((d) => d.state === 'pending' && d.run > 0 && !wanted.has('pending'));
    if (started.length) await deps.queue.addBulk(started.map((d) => redeliveryJob(d, d.run)));
    progress.redelivered += await redeliverFound(deps.log, deps.queue, page.found.filter((d) => wanted.has(d.state)));
    progress.scanned += page.scanned;
    progress.through = page.through;
    await job.updateProgress(progress);
  }
  return { ...progress, finishedAt: await redisTimeMs(deps.redis) };
}

/**
 * The tenant's deliveries that ended from `since` to `until`, by their latest ending. `until` is
 * at the latest the time the recovery was asked for, so a delivery that is sent again and fails
 * again is not met a second time.
 */
async function* windowPages(log: DeliveryLog, data: RecoverWindowJobData, through: number | null): AsyncGenerator<Page> {
  for (let from = through; ; ) {
    const page = await log.endedPage(data.tenant, from ?? data.since, data.until, PAGE, from !== null);
    if (page.last === null) return;
    const found = (await log.loadMany(page.entries)).filter((d): d is Delivery => d !== null && d.tenant === data.tenant);
    yield { found, scanned: page.entries.length, through: page.last };
    from = page.last;
  }
}

/**
 * A batch's deliveries: its items' logs in submission order, `through` counting the items read,
 * then the batch's own (`batch.completed`, queued after them; as with any redelivery, arrival
 * order is not guaranteed). Pending runs are read too, to queue those a cut recovery left unqueued.
 */
async function* batchPages({ log, batches }: RecoveryDeps, data: RecoverBatchJobData, through: number | null): AsyncGenerator<Page> {
  const asked = new Set<DeliveryState>(data.states);
  const page = async (subjects: string[], next: number): Promise<Page> => {
    const found = await log.inStates(subjects, data.tenant, [...asked, 'pending']);
    return { found, scanned: found.filter((d) => asked.has(d.state)).length, through: next };
  };
  let start = through ?? 0;
  for (;;) {
    const ids = await batches.itemIds(data.batchId, start, PAGE);
    if (ids.length === 0) break;
    start += ids.length;
    yield await page(ids, start);
  }
  yield await page([data.batchId], start);
}
