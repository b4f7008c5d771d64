import { DelayedError, MetricsTime, UnrecoverableError, Worker, type Job, type MinimalJob, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ERROR_CODES, GenerationFailure, JOBS, QUEUES, type GenerationStore, type Logger, type Metrics, type RetryDue } from '@imagegen/shared';
import { LostFetches } from '../recovery/lost-fetches';
import { retryDelay, type BackoffPolicy } from './backoff';
import { StorageUnavailable, UpstreamBusy, type GenerationPipeline, type RunOutcome } from './generation.pipeline';
import { holdWhileWritesRefused, REFUSAL_LONGEST_WAIT_MS, waitingOutWriteRefusals } from '../write-refusals';

export interface GenerateWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  backoff: BackoffPolicy;
  /** Where each retry's due time is kept by Redis's clock (see RetryDue). */
  retryDue: RetryDue;
  metrics?: Metrics;
  rateLimit?: { max: number; duration: number };
}

/** A retry handed out less than this early runs: clocks a little apart are no reason to wait again. */
const EARLY_SLACK_MS = 50;

/** The job's backoff: the base delay comes from the job (set by the API that enqueued it), so both processes agree. */
function backoffOf(job: MinimalJob | undefined, policy: BackoffPolicy): BackoffPolicy {
  const delay = job?.opts.backoff && typeof job.opts.backoff === 'object' ? job.opts.backoff.delay : undefined;
  return { ...policy, baseMs: delay ?? policy.baseMs };
}

function toFailure(err: unknown): GenerationFailure {
  if (err instanceof GenerationFailure) return err;
  return new GenerationFailure(ERROR_CODES.internal, (err as Error)?.message ?? String(err), true);
}

/** The delay each failure that is retried was given: BullMQ asks the backoff strategy for it after the handler recorded it. */
const plannedDelays = new WeakMap<object, number>();

/** The `generate` job: parse the payload, run the pipeline, record the outcome of a failed attempt. */
export function createGenerateWorker(pipeline: GenerationPipeline, store: GenerationStore, queue: Queue, logger: Logger, opts: GenerateWorkerOptions): Worker {
  const handler = async (job: Job, token?: string, signal?: AbortSignal): Promise<RunOutcome> => {
    const parsed = JOBS.generate.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid generate payload: ${parsed.error.message}`);
    const aborted = signal ?? new AbortController().signal;
    // What an attempt ends with (its failure on the record, the job put back or delayed) is written
    // once Redis takes it: thrown to BullMQ, a refusal would become the attempt's failure, and
    // BullMQ's own step may well be taken meanwhile (its first write adds no memory, which a full
    // Redis lets through, and the rest of the step with it), so the attempt
    // would count with "OOM ..." for its reason, a permanent failure be retried, and the record
    // stay active until the orphan sweep.
    const written = <T>(write: () => Promise<T>): Promise<T> =>
      waitingOutWriteRefusals(write, aborted, (refusal, waitMs) =>
        logger.warn("Redis refuses writes: the attempt's outcome is written once it takes them", { generationId: parsed.data.generationId, jobId: job.id, error: refusal, retryInMs: waitMs }),
      );
    if (job.attemptsMade > 0) {
      // a retry handed out early (by a worker whose clock runs ahead) waits for what is left
      // (unreadable: the retry runs, as it would have without the check)
      const left = await opts.retryDue.dueIn(parsed.data.generationId).catch(() => 0);
      if (left > EARLY_SLACK_MS) {
        await written(() => job.moveToDelayed(Date.now() + left, token));
        throw new DelayedError();
      }
    }
    const ref = { id: parsed.data.generationId, tenant: parsed.data.tenant, batchId: parsed.data.batchId };
    const generationId = ref.id;
    // the retry budget's count (GENERATOR_MAX_ATTEMPTS): BullMQ counts runs a stall ended apart
    const attempt = job.attemptsMade + 1;
    // what the record and the dashboard say: every run, a run cut short by a worker that died too
    const run = attempt + (job.stalledCounter ?? 0);
    // stage changes write the job's progress and log lines in the same step as the record
    const jobKey = queue.toKey(job.id as string);
    const jobKeys = { hash: jobKey, events: queue.keys.events as string, meta: queue.keys.meta as string, logs: `${jobKey}:logs` };
    const log = logger.child({ generationId, jobId: job.id, attempt: run, tenant: ref.tenant, ...(parsed.data.requestId ? { requestId: parsed.data.requestId } : {}) });
    log.info('generation attempt started');
    const started = performance.now();
    // each stage's time is observed when the next one begins
    let stageAt = { stage: '', at: started };
    const observeStage = (next: string) => {
      const now = performance.now();
      if (stageAt.stage) opts.metrics?.stageDuration.observe({ stage: stageAt.stage }, (now - stageAt.at) / 1000);
      stageAt = { stage: next, at: now };
    };
    const observeAttempt = (outcome: string) => {
      observeStage('');
      opts.metrics?.jobDuration.observe({ queue: QUEUES.generate, outcome }, (performance.now() - started) / 1000);
    };
    try {
      let waited = false;
      const outcome = await waitingOutWriteRefusals(
        () =>
          pipeline.run(ref, {
            attempt: run,
            ranBefore: job.attemptsStarted > 1 || waited,
            signal: aborted,
            job: jobKeys,
            onStage: (stage, progress) => {
              log.debug('generation stage', { stage, progress });
              observeStage(stage === 'done' ? '' : stage);
            },
            onWriteRefused: (refusal, waitMs) => log.warn('Redis refuses writes: the generation keeps what it paid for and writes it again', { error: refusal, retryInMs: waitMs }),
          }),
        aborted,
        (refusal, waitMs) => {
          waited = true;
          // at the longest wait it has gone on for half a minute: an operator's matter (memory, a failover that did not end)
          (waitMs >= REFUSAL_LONGEST_WAIT_MS ? log.error : log.warn).call(log, 'Redis refuses writes: the generation waits for it (not an attempt)', { error: refusal, retryInMs: waitMs });
        },
      );
      observeAttempt(outcome.status);
      log.info('generation attempt finished', { outcome: outcome.status, durationMs: Math.round(performance.now() - started) });
      if (outcome.status === 'skipped') {
        // a job run again after its generation ended (Retry on the dashboard): say why nothing happens
        const now = outcome.reason === 'terminal' ? (await store.get(generationId))?.status : undefined;
        await written(() => job.log(`${new Date().toISOString()} nothing to run: generation ${generationId} ${now ? `is already ${now}` : 'is gone (its retention ended)'}; an ended generation is not run again, submit a new one`));
      }
      return outcome;
    } catch (err) {
      if (err instanceof UpstreamBusy) {
        // not a failure: wait for the other runner's call to end (its checkpoint will serve us);
        // the generation stays active at `generating`, which is what it is
        const retryInMs = err.retryInMs;
        await written(() => job.moveToDelayed(Date.now() + retryInMs, token));
        throw new DelayedError();
      }
      const failure = toFailure(err);
      const info = { code: failure.code, message: failure.message, retryable: failure.retryable };
      if (failure instanceof StorageUnavailable) {
        // the bytes are safe and the store is away: wait for it without spending an attempt
        // (starts that were not counted as attempts were waits: the delay grows with them)
        const delay = retryDelay(Math.max(1, job.attemptsStarted - job.attemptsMade), failure, backoffOf(job, opts.backoff));
        observeAttempt('storage_wait');
        log.warn('generation waits for storage', { code: failure.code, retryInMs: delay, durationMs: Math.round(performance.now() - started) });
        const report = { job: jobKeys, line: `attempt ${run} waits for storage (${failure.code}: ${failure.message}); next try in ${(delay / 1000).toFixed(1)} s` };
        if ((await written(() => store.waitingForStorage(ref, info, report))) !== 'ok') await written(() => job.log(`${new Date().toISOString()} ${report.line}`));
        await written(() => job.moveToDelayed(Date.now() + delay, token));
        throw new DelayedError();
      }
      observeAttempt('failed');
      const maxAttempts = job.opts.attempts ?? 1;
      const final = !failure.retryable || attempt >= maxAttempts;
      log.warn('generation attempt failed', { maxAttempts, code: failure.code, final, durationMs: Math.round(performance.now() - started) });
      const report = { job: jobKeys, line: `attempt ${run} failed: ${failure.code}: ${failure.message}` };
      if (final) {
        // a record already ended (cancelled) keeps its end; the dashboard still hears of the attempt
        if ((await written(() => store.fail(ref, info, report))) !== 'ok') await written(() => job.log(`${new Date().toISOString()} ${report.line}`));
        throw new UnrecoverableError(`${failure.code}: ${failure.message}`);
      }
      if ((await written(() => store.retrying(ref, info, report))) !== 'ok') await written(() => job.log(`${new Date().toISOString()} ${report.line}`));
      // the delay is chosen here, once, and kept by Redis's clock as well as BullMQ's
      const delay = retryDelay(attempt, failure, backoffOf(job, opts.backoff));
      plannedDelays.set(failure, delay);
      await opts.retryDue.set(generationId, delay).catch(() => undefined);
      // the upstream limits all of us, not this job: hold every worker back for as long as it
      // asked, up to the longest retry delay (a Retry-After of a billion seconds would otherwise
      // stop every generation of every tenant for decades)
      if (failure.code === ERROR_CODES.rateLimited && failure.retryAfterMs && opts.rateLimit) {
        const limitMs = Math.min(failure.retryAfterMs, opts.backoff.maxMs);
        await written(() => queue.rateLimit(limitMs));
      }
      throw failure;
    }
  };

  const lost = new LostFetches(logger);
  const worker = new Worker(QUEUES.generate, lost.track(handler), {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: opts.maxStalledCount,
    // per-minute completed/failed counts, charted by Bull Board
    metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
    ...(opts.rateLimit ? { limiter: opts.rateLimit } : {}),
    settings: {
      backoffStrategy: (attemptsMade: number, _type?: string, err?: Error, job?: MinimalJob) => (err && plannedDelays.get(err)) ?? retryDelay(attemptsMade, err, backoffOf(job, opts.backoff)),
    },
  });

  // A job can fail without our handler seeing it (stalled too often): the record must still end.
  worker.on('failed', (job, err) => {
    if (!job) return;
    void (async () => {
      if ((await job.getState()) !== 'failed') return;
      const parsed = JOBS.generate.schema.safeParse(job.data);
      if (!parsed.success) return;
      await store.fail({ id: parsed.data.generationId, tenant: parsed.data.tenant, batchId: parsed.data.batchId }, { code: ERROR_CODES.internal, message: err.message, retryable: false });
    })().catch((e: unknown) => logger.error('could not record failure', { jobId: job.id, error: (e as Error).message }));
  });
  worker.on('error', (err) => logger.error('generate worker error', { error: err.message }));
  holdWhileWritesRefused(worker, logger, 'the generate worker');
  lost.watch(worker, opts.connection);
  return worker;
}
