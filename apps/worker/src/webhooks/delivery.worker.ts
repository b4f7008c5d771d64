import { randomBytes } from 'node:crypto';
import { DelayedError, isNotConnectionError, MetricsTime, UnrecoverableError, Worker, type Job, type Span } from 'bullmq';
import type { Redis } from 'ioredis';
import { attemptsInRun, deliverProgressSchema, QUEUES, redisNotServing, redisTimeMs, WEBHOOK_JOBS, WEBHOOK_MAX_ATTEMPTS, type BatchStore, type Delivery, type DeliverProgress, type DeliverWebhookJobData, type DeliverResult, type RecoveryResult } from '@imagegen/shared';
import { LostFetches } from '../recovery/lost-fetches';
import { attemptDelivery, releaseSlot, type AttemptDeps, type AttemptResult } from './attempt';
import { LetGo, lockMs, SLOW_ATTEMPT_MS, SLOW_PER_PLACE, unansweredAfter } from './let-go';
import { runRecovery } from './recovery';
import { holdWhileWritesRefused, REFUSAL_FIRST_WAIT_MS, waitingOutWriteRefusals } from '../write-refusals';

export interface DeliveryWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
  timeoutMs: number;
  /** A batch's items, for a recovery scoped to the batch. */
  batches: BatchStore;
  /** How often jobs of dead workers are looked for, and how often one may be taken back before it fails (WORKER_STALLED_INTERVAL_MS, WORKER_MAX_STALLED_COUNT). */
  stalledIntervalMs?: number;
  maxStalledCount?: number;
}

/** A failed attempt with another one to come, after `delayMs` (the backoff strategy reads it). */
class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Longest a delivery waiting for a busy host stays parked before it looks again by itself; it is
 * normally woken sooner, by the delivery that frees a slot.
 */
const MAX_PARK_MS = 5000;

/**
 * A delivery step that fails on our side (a Redis call: taking the slot, loading, recording) is
 * tried again this many times, without using a step of the schedule, before the delivery is ended
 * `exhausted` with what went wrong: left to BullMQ's attempts, the job's last one failing would
 * leave the delivery `pending` in its log with nothing to carry it on.
 */
export const MAX_UNSETTLED = 8;

/** Wait before the n-th try of a step that failed on our side: 1 s doubling to 1 min, times WEBHOOK_RETRY_SCALE. */
export function unsettledDelayMs(tries: number, scale: number): number {
  return Math.max(10, Math.round(Math.min(60_000, 1000 * 2 ** (tries - 1)) * scale));
}

/** The number in its run of the attempt a deliver job makes now: attempts made before the job (the dispatcher's) count toward the schedule. */
function attemptOf(job: Job, data: DeliverWebhookJobData): number {
  return data.attemptsBefore + job.attemptsMade + 1;
}

/** The webhooks queue's worker; closing it stops taking jobs, then waits for them and for the attempts that let go of theirs (each bounded by the timeout). */
class DeliveryWorker extends Worker {
  letGo?: LetGo;
  /** Runs before BullMQ fails a job taken back from dead workers more than maxStalledCount times (its processor is not called then). */
  beforeStalledOut?: (job: Job) => Promise<void>;

  protected override async handleFailed(err: Error, job: Job, token: string, fetchNextCallback?: () => boolean, span?: Span): Promise<Job> {
    // first, so that a death between the two leaves the job to do it again; a lost connection is
    // tried again by BullMQ, anything else would only keep the job from failing
    if (job.deferredFailure && this.beforeStalledOut) {
      await this.beforeStalledOut(job).catch((e: Error) => {
        if (!isNotConnectionError(e)) throw e;
        this.emit('error', e);
      });
    }
    return super.handleFailed(err, job, token, fetchNextCallback, span);
  }

  override async close(force = false): Promise<void> {
    const closed = super.close(force);
    if (!force) await this.letGo?.drain();
    return closed;
  }
}

/**
 * The webhooks queue's jobs: `recover` (runRecovery) and `deliver`, one attempt of one delivery. A delivery whose host is at its in-flight bound,
 * or whose host's circuit is open, goes back to the delayed set without using an attempt (and
 * without holding a worker slot while it waits). Retries follow the webhook schedule; every
 * attempt sends the frozen body under the same webhook-id, freshly signed.
 */
export function createDeliveryWorker(deps: AttemptDeps, opts: DeliveryWorkerOptions): Worker {
  const { log, limiter, logger } = deps;

  const handler = async (job: Job, token?: string): Promise<DeliverResult | RecoveryResult> => {
    if (job.name === WEBHOOK_JOBS.recover.name) return runRecovery(job, { log, queue: deps.queue, redis: opts.connection, batches: opts.batches });
    const parsed = WEBHOOK_JOBS.deliver.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid deliver payload: ${parsed.error.message}`);
    const attempt = attemptOf(job, parsed.data);
    try {
      return await deliver(job, token, parsed.data, attempt);
    } catch (err) {
      if (err instanceof DelayedError || err instanceof RetryLater) throw err;
      if (redisNotServing(err) !== undefined) return waitOutRefusal(job, token, err);
      return unsettled(job, token, parsed.data, attempt, err as Error);
    }
  };

  /** Holds the worker off taking jobs for a while (set once the worker is made). */
  let holdOff: (err: unknown) => void = () => undefined;

  /**
   * A step Redis refused (full under maxmemory, a replica during a failover) is made again once
   * it takes writes, neither counted as a try nor using a step of the schedule. Left to BullMQ,
   * each refusal used a step: a full Redis refuses the count of the try but makes BullMQ's move of
   * the failed job to its retry (whose first write frees memory). The job goes back to the delayed
   * set, and the worker takes no new jobs for a while (each would be refused too). A replica
   * refuses that move as well: it is tried again for up to half the job's lock, after which the
   * job is taken back as stalled once Redis takes writes.
   */
  const waitOutRefusal = async (job: Job, token: string | undefined, err: unknown): Promise<never> => {
    holdOff(err);
    const moveBack = () => job.moveToDelayed(Date.now() + REFUSAL_FIRST_WAIT_MS, token);
    await waitingOutWriteRefusals(moveBack, AbortSignal.timeout(lockMs(opts.timeoutMs) / 2), () => undefined).catch(() => undefined);
    throw new DelayedError();
  };

  /** What became of a delivery no longer waiting in this job's run: ended meanwhile (say, its answer recorded by a call whose reply was lost), or another run's. */
  const notCurrent = (run: number, loaded: { delivery: Delivery } | null): DeliverResult =>
    !loaded ? { outcome: 'gone' } : loaded.delivery.run === run ? { outcome: loaded.delivery.state } : { outcome: 'stale' };

  const deliver = async (job: Job, token: string | undefined, data: DeliverWebhookJobData, attempt: number): Promise<DeliverResult> => {
    const { deliveryId, subject, host, run } = data;
    const inFlightUntil = progressOf(job, attempt).inFlightUntil;
    if (inFlightUntil !== undefined) {
      const now = await redisTimeMs(opts.connection);
      // run early (woken by a host slot freed for it while it was parked): the attempt that let
      // go of the job is still under way, and moves the job on when it ends
      if (inFlightUntil > now) return delayUntil(job, token, inFlightUntil, now);
    }
    // names this attempt alone (BullMQ hands a job back to a slot under the token it had before)
    const member = `${job.id}:${randomBytes(6).toString('base64url')}`;
    // one round trip: the slot and the frozen delivery; if either fails, the slot is given back
    // (a call that failed may still have taken it)
    const [taken, read] = await Promise.allSettled([limiter.acquireAt(host, member, job.id as string), log.load(subject, deliveryId)]);
    if (taken.status === 'rejected' || read.status === 'rejected') {
      if (taken.status === 'rejected' || taken.value.slot.kind === 'ok') await releaseSlot(deps, host, member, 'unknown').catch(() => undefined);
      throw taken.status === 'rejected' ? taken.reason : (read as PromiseRejectedResult).reason;
    }
    const [{ slot, now }, loaded] = [taken.value, read.value];
    const current = loaded && loaded.delivery.run === run && loaded.delivery.state === 'pending';
    if (slot.kind !== 'ok') {
      if (!current) {
        if (slot.kind === 'busy') await limiter.unpark(host, job.id as string);
        return notCurrent(run, loaded);
      }
      // spread the wake-ups so a host's backlog does not come back all at once
      const wait =
        slot.kind === 'busy'
          ? Math.min(Math.max(slot.retryInMs, 50), MAX_PARK_MS) * (0.5 + Math.random())
          : slot.retryInMs + Math.min(slot.retryInMs, 1000) * Math.random();
      await job.moveToDelayed(Date.now() + Math.round(wait), token);
      throw new DelayedError();
    }
    if (!current) {
      await releaseSlot(deps, host, member, 'unknown');
      return notCurrent(run, loaded);
    }
    if (attemptsInRun(loaded.delivery) >= attempt) {
      await releaseSlot(deps, host, member, 'unknown');
      return catchUp(job, token, data, loaded.delivery);
    }
    // due later (the job run early: its move to the next step's time did not happen, or this
    // host's clock, which BullMQ runs delayed jobs by, is ahead of Redis's)
    const notBefore = loaded.delivery.nextAttemptAt;
    if (notBefore !== undefined && notBefore > now) {
      await releaseSlot(deps, host, member, 'unknown');
      return delayUntil(job, token, notBefore, now);
    }
    const attempting = attemptDelivery(deps, loaded, host, member, attempt);
    if ((await unansweredAfter(attempting, SLOW_ATTEMPT_MS)) && letGo.take()) {
      // endpoints that hang would otherwise hold every job slot until they time out: the job
      // waits in the delayed set (run again after a lock's time should this process die) while
      // the request goes on here, keeping its host slot
      const waitMs = lockMs(opts.timeoutMs);
      const moved = await redisTimeMs(opts.connection)
        .then((now) => job.updateProgress({ ...progressOf(job, attempt), inFlightUntil: now + waitMs } satisfies DeliverProgress))
        .then(() => job.moveToDelayed(Date.now() + waitMs, token))
        .then(
          () => true,
          () => false,
        );
      if (moved) {
        letGo.add(afterLettingGo(job, data, attempt, attempting));
        throw new DelayedError();
      }
      letGo.giveBack();
    }
    const outcome = await attempting;
    // a redelivery started meanwhile: that run carries on, this one stops
    if (outcome.recorded !== 'ok') return { outcome: outcome.recorded };
    if (outcome.state === 'pending') throw new RetryLater(outcome.retryInMs ?? 0, outcome.error ?? 'failed');
    return { outcome: outcome.state, ...(outcome.status !== undefined ? { status: outcome.status } : {}) };
  };

  /**
   * The delivery has recorded this job's attempt already: one that let go of the job, its process
   * gone before it moved the job on, or one recorded by a call whose reply was lost. The job
   * goes on to the attempt after the last recorded, when that one said, rather than send it again.
   */
  const catchUp = async (job: Job, token: string | undefined, data: DeliverWebhookJobData, delivery: Delivery): Promise<never> => {
    // at most the schedule's last attempt (which ends the delivery)
    await job.updateData({ ...data, attemptsBefore: Math.min(WEBHOOK_MAX_ATTEMPTS - 1, attemptsInRun(delivery) - job.attemptsMade) });
    return delayUntil(job, token, delivery.nextAttemptAt ?? 0, await redisTimeMs(opts.connection));
  };

  /** Puts the job back in the delayed set until `at` (Redis time, `now` read from it; at once if past). */
  const delayUntil = async (job: Job, token: string | undefined, at: number, now: number): Promise<never> => {
    await job.moveToDelayed(Date.now() + Math.max(0, at - now), token);
    throw new DelayedError();
  };

  /**
   * A step of attempt `attempt` failed on our side: tried again later without using a step of the
   * schedule (counted in the job's progress, per attempt), or, past MAX_UNSETTLED, the delivery is
   * ended, unless it turns out to have ended already.
   */
  const unsettled = async (job: Job, token: string | undefined, data: DeliverWebhookJobData, attempt: number, err: Error): Promise<DeliverResult> => {
    const tries = await countTry(job, data, attempt, err);
    if (tries <= MAX_UNSETTLED) {
      await job.moveToDelayed(Date.now() + unsettledDelayMs(tries, deps.retryScale), token);
      throw new DelayedError();
    }
    return giveUp(data, tries, err);
  };

  /** What the job's progress says of attempt `attempt` (nothing, if it is about another). */
  const progressOf = (job: Job, attempt: number): DeliverProgress => {
    const saved = deliverProgressSchema.safeParse(job.progress);
    return saved.success && saved.data.attempt === attempt ? saved.data : { attempt };
  };

  /**
   * Counts a try of `attempt` that failed on our side, in the job's progress; returns its number.
   * The attempt's let-go marker stays, unless the attempt it is about has `ended`: a job run early
   * whose steps fail still waits for that attempt.
   */
  const countTry = async (job: Job, data: DeliverWebhookJobData, attempt: number, err: Error, ended = false): Promise<number> => {
    const saved = progressOf(job, attempt);
    const tries = (saved.unsettled ?? 0) + 1;
    if (tries > MAX_UNSETTLED) return tries;
    logger.warn('webhook delivery step failed; trying it again', { deliveryId: data.deliveryId, attempt, tries, error: err.message });
    const progress: DeliverProgress = { attempt, unsettled: tries, ...(!ended && saved.inFlightUntil !== undefined ? { inFlightUntil: saved.inFlightUntil } : {}) };
    await job.updateProgress(progress);
    return tries;
  };

  /** Ends a delivery whose attempt could not be settled, unless it turns out to have ended already. */
  const giveUp = (data: DeliverWebhookJobData, tries: number, err: Error): Promise<DeliverResult> =>
    endPending(data, `not settled after ${tries} tries: ${err.message}`, 'webhook delivery could not be settled; ending it');

  /** Ends the delivery `exhausted` with `error`, if it is still pending in this job's run. */
  const endPending = async (data: DeliverWebhookJobData, error: string, why: string): Promise<DeliverResult> => {
    const loaded = await log.load(data.subject, data.deliveryId);
    if (!loaded || loaded.delivery.run !== data.run || loaded.delivery.state !== 'pending') return notCurrent(data.run, loaded);
    logger.error(why, { deliveryId: data.deliveryId, error });
    const outcome = { run: data.run, state: 'exhausted' as const, error, durationMs: 0 };
    const recorded = await log.recordAttempt({ tenant: data.tenant, subject: data.subject, id: data.deliveryId }, outcome);
    return { outcome: recorded === 'ok' ? 'exhausted' : recorded };
  };

  /**
   * The outcome of an attempt that let go of its job: the job goes on to its next step after the
   * schedule's wait (its attempt counted in its data, since BullMQ did not count one), or runs now
   * to end (it finds the delivery ended). An attempt that failed on our side is tried again, or
   * ended, as unsettled() does. If this fails too, the job runs when its delay ends and repeats
   * the attempt whose outcome it did not learn.
   */
  const afterLettingGo = async (job: Job, data: DeliverWebhookJobData, attempt: number, attempting: Promise<AttemptResult>): Promise<void> => {
    try {
      const outcome = await attempting.catch((err: Error) => err);
      if (outcome instanceof Error) {
        const tries = await countTry(job, data, attempt, outcome, true);
        if (tries <= MAX_UNSETTLED) return await job.changeDelay(unsettledDelayMs(tries, deps.retryScale));
        await giveUp(data, tries, outcome);
      } else if (outcome.recorded === 'ok' && outcome.state === 'pending') {
        await job.updateData({ ...data, attemptsBefore: data.attemptsBefore + 1 });
        return await job.changeDelay(outcome.retryInMs ?? 0);
      }
      // run now, to end: no longer waiting for this attempt
      await job.updateProgress({ attempt } satisfies DeliverProgress);
      await job.promote();
    } catch (err) {
      logger.warn('a slow webhook attempt could not move its job on; it runs again later', { deliveryId: data.deliveryId, error: (err as Error).message });
    }
  };

  const letGo = new LetGo(opts.concurrency * SLOW_PER_PLACE);
  const lost = new LostFetches(logger);
  const worker = new DeliveryWorker(QUEUES.webhooks, lost.track(handler), {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    lockDuration: lockMs(opts.timeoutMs),
    // the same allowance as generations; a delivery whose job fails so is ended (beforeStalledOut)
    ...(opts.stalledIntervalMs !== undefined ? { stalledInterval: opts.stalledIntervalMs } : {}),
    ...(opts.maxStalledCount !== undefined ? { maxStalledCount: opts.maxStalledCount } : {}),
    // per-minute completed/failed counts, charted by Bull Board
    metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
    settings: {
      backoffStrategy: (_attemptsMade: number, _type?: string, err?: Error) => (err instanceof RetryLater ? err.delayMs : 1_000),
    },
  });
  worker.letGo = letGo;
  // left to BullMQ alone, such a job fails with its delivery still pending in the log
  worker.beforeStalledOut = async (job) => {
    const parsed = WEBHOOK_JOBS.deliver.schema.safeParse(job.data);
    if (job.name !== WEBHOOK_JOBS.deliver.name || !parsed.success) return;
    const attempt = attemptOf(job, parsed.data);
    await endPending(parsed.data, `attempt ${attempt} not finished: its job was taken back from stopped workers ${job.stalledCounter} times`, 'webhook delivery job taken back from dead workers too often; ending it');
  };
  worker.on('error', (err) => logger.error('webhook worker error', { error: err.message }));
  holdOff = holdWhileWritesRefused(worker, logger, 'the webhook worker');
  lost.watch(worker, opts.connection);
  return worker;
}

