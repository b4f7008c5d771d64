import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { recoveryProgressSchema, redeliverFound, redeliveryJob, redisTimeMs, WEBHOOK_JOBS, type Delivery, type DeliveryLog, type RecoveryProgress } from '@imagegen/shared';

/** Ended deliveries read, loaded and sent again per round. */
const PAGE = 500;

export type RecoveryResult = RecoveryProgress & { finishedAt: number };

/**
 * The `recover` job: reads the tenant's index of ended deliveries from `since` to `until`, a page
 * at a time, and sends again each one still in one of the asked states (redeliverFound: a new
 * run, only if still as read). Its progress says how far it read, so a recovery cut short (the
 * worker killed, Redis gone) goes on from there when retried, and a delivery read twice is
 * started once; one it had started but not queued yet (a `pending` redelivery run) is queued.
 * `until` is at the latest the time it was asked for, so a delivery that is sent again and fails
 * again is not met a second time.
 */
export async function runRecovery(job: Job, log: DeliveryLog, queue: Queue, redis: Redis): Promise<RecoveryResult> {
  const parsed = WEBHOOK_JOBS.recover.schema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`invalid recover payload: ${parsed.error.message}`);
  const { tenant, since, until, states } = parsed.data;
  const saved = recoveryProgressSchema.safeParse(job.progress);
  const progress: RecoveryProgress = saved.success ? saved.data : { scanned: 0, redelivered: 0, through: null };
  const wanted = new Set<string>(states);
  for (;;) {
    const page = await log.endedPage(tenant, progress.through ?? since, until, PAGE, progress.through !== null);
    if (page.last === null) break;
    const loaded = (await log.loadMany(page.entries)).filter((d): d is Delivery => d !== null && d.tenant === tenant);
    // sent again by a recovery that died before it queued the job: queued now (the job id is the run's, so a job that exists is not added twice)
    const started = loaded.filter((d) => d.state === 'pending' && d.run > 0);
    if (started.length) await queue.addBulk(started.map((d) => redeliveryJob(d, d.run)));
    progress.redelivered += await redeliverFound(log, queue, loaded.filter((d) => wanted.has(d.state)));
    progress.scanned += page.entries.length;
    progress.through = page.last;
    await job.updateProgress(progress);
  }
  return { ...progress, finishedAt: await redisTimeMs(redis) };
}
