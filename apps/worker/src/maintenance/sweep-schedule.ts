import type { Queue } from 'bullmq';
import { JOBS, redisNotServing, type Logger } from '@imagegen/shared';

/** How often a worker checks that the sweep is still scheduled. */
export const SWEEP_SCHEDULE_CHECK_MS = 60_000;

/**
 * The retention sweep's one scheduler, whatever the number of workers (upserting it is
 * idempotent): made at start, then checked every `checkMs`. Should Redis lose it (a flush, a
 * failover without persistence), the first worker to look makes it again; otherwise no sweep
 * would run until a worker restarts, and files of records gone with Redis would stay for good.
 * Returns a stop function.
 */
export async function keepSweepScheduled(queue: Queue, everyMs: number, logger: Logger, checkMs = SWEEP_SCHEDULE_CHECK_MS): Promise<() => void> {
  const upsert = () =>
    queue.upsertJobScheduler(
      JOBS.sweep.name,
      { every: everyMs },
      // a sweep's result is logged; only failed ones are kept for the dashboard
      { name: JOBS.sweep.name, data: {}, opts: { removeOnComplete: true, removeOnFail: 50 } },
    );
  // BullMQ keeps a scheduler's offset (its phase within `every`) when `every` changes: one left by
  // a longer interval puts each run after a pause (workers stopped a while) up to that interval
  // late, however short the new one. Such a scheduler is made anew.
  const schedule = async () => {
    const found = await queue.getJobScheduler(JOBS.sweep.name);
    if (found && (found.every !== everyMs || Number(found.offset ?? 0) >= everyMs)) await queue.removeJobScheduler(JOBS.sweep.name);
    await upsert();
  };
  // a worker started while Redis refuses writes still starts: the check below schedules it once Redis takes them
  let deferred = false;
  await schedule().catch((err: unknown) => {
    const refusal = redisNotServing(err);
    if (refusal === undefined) throw err;
    deferred = true;
    logger.warn('Redis refuses writes: the retention sweep is scheduled once it takes them', { error: refusal });
  });
  const timer = setInterval(() => {
    void (async () => {
      if (deferred) {
        await schedule();
        deferred = false;
        logger.info('scheduled the retention sweep', { everyMs });
        return;
      }
      if (await queue.getJobScheduler(JOBS.sweep.name)) return;
      await upsert();
      logger.warn('the retention sweep was no longer scheduled in Redis: scheduled it again', { everyMs });
    })().catch(() => undefined);
  }, checkMs).unref();
  return () => clearInterval(timer);
}
