import { randomUUID } from 'node:crypto';
import {
  ERROR_CODES,
  GenerationFailure,
  isTerminal,
  STAGE_PROGRESS,
  storageErrorText,
  type GenerationRecord,
  type GenerationRef,
  type GenerationStore,
  type GeneratorProvider,
  type JobKeys,
  type JobReport,
  type Metrics,
  type Stage,
  type Storage,
  type StoredImage,
  type StoredThumbnail,
  type UpstreamClaim,
} from '@imagegen/shared';
import type { ThumbnailOptions } from '../images/image-processing';
import { sharpImageStage, type ImageStage } from '../images/image-stage';
import type { Semaphore } from '../images/semaphore';
import { downloadImage } from '../providers/download';
import { waitingOutWriteRefusals } from '../write-refusals';

export interface GenerationPipelineOptions {
  timeoutMs: number;
  maxDownloadBytes: number;
  thumbnails: ThumbnailOptions;
  /** Download bytes and thumbnail time, when this process exports metrics. */
  metrics?: Metrics;
  /** The image work (sharp unless replaced). */
  images?: ImageStage;
  /** Most bytes spooled in Redis at once, every worker's together (STORAGE_SPOOL_MAX_MB). */
  spoolBudgetBytes: number;
}

export interface RunContext {
  /** 1-based number of this run: the attempts made before it, runs a stall ended (their worker died) included. */
  attempt: number;
  /** An earlier run of this generation may have written files (a retry, a job taken over after its worker stalled). */
  ranBefore?: boolean;
  /** Aborted when the generation is cancelled. */
  signal: AbortSignal;
  /** The job to report stages to (its progress and log, written with the record). */
  job?: JobKeys;
  /** Told of each stage as it is entered (metrics, debug log lines). */
  onStage(stage: Stage, progress: number): void;
  /** Told when Redis refuses the write that keeps what was just paid for, and how long until it is made again. */
  onWriteRefused?(refusal: string, waitMs: number): void;
}

export type RunOutcome =
  | { status: 'completed'; upstreamCalled: boolean }
  | { status: 'skipped'; reason: 'missing' | 'terminal' }
  | { status: 'cancelled' };

type Made = Awaited<ReturnType<ImageStage['thumbnails']>>;

/** Thrown when the record turned terminal under us (cancelled): the job ends quietly. */
class Superseded extends Error {}

/** Another runner holds the upstream lease (this job was re-queued while its call runs): try again later. */
export class UpstreamBusy extends Error {
  constructor(readonly retryInMs: number) {
    super('another runner is calling the upstream for this generation');
  }
}

/**
 * The store failed while the paid-for bytes are safe (spooled in Redis, or the original already
 * stored): another try costs no upstream call, so the worker waits for the store without
 * counting an attempt (GENERATOR_MAX_ATTEMPTS counts upstream calls and downloads).
 */
export class StorageUnavailable extends GenerationFailure {
  constructor(message: string) {
    super(ERROR_CODES.storageFailed, message, true);
  }
}

/** Paid-for bytes that could not be stored stay in Redis this long for the next attempt. */
const SPOOL_SECONDS = 24 * 3600;
/** Storage outages are waited out this long from a generation's creation (its bytes are spooled longer); then they count as attempts. */
const STORAGE_WAIT_MS = SPOOL_SECONDS * 1000;
const PUT_RETRY_DELAYS_MS = [100, 400];

/**
 * Runs one generation through its stages, checkpointing into the record so a retry
 * resumes from the first unfinished stage: the upstream is paid once per stored original.
 */
export class GenerationPipeline {
  constructor(
    private readonly store: GenerationStore,
    private readonly storage: Storage,
    private readonly provider: GeneratorProvider,
    private readonly cpu: Semaphore,
    private readonly opts: GenerationPipelineOptions,
  ) {}

  async run(ref: GenerationRef, ctx: RunContext): Promise<RunOutcome> {
    const owner = randomUUID();
    // names this run's files: a runner that went on past its lease (paused, its lock lost) writes
    // beside the files of the run that took over, never over them, so a file never changes
    const run = owner.slice(0, 8);
    const leaseMs = this.opts.timeoutMs + 5000;
    // active, lease claimed and record read: one step
    const started = await this.store.start(ref, ctx.attempt, owner, leaseMs, this.report(ctx, 'generating'));
    if (started.outcome !== 'ok') return { status: 'skipped', reason: started.outcome };
    const { record, claim } = started;
    ctx.onStage('generating', STAGE_PROGRESS.generating);
    try {
      let original = record.original;
      let upstreamCalled = false;
      let made: Promise<Made> | undefined;
      if (!original) {
        // stores the original and enters `processing` in the same step; the thumbnails are made
        // while the original is being stored
        const secured = await this.secureOriginal(record, claim, owner, run, leaseMs, ctx, (bytes) => (made = this.makeThumbnails(bytes)));
        ({ original, upstreamCalled } = secured);
        await this.checkAborted(record, ctx);
        ctx.onStage('processing', STAGE_PROGRESS.processing);
      } else {
        await this.enter(record, 'processing', ctx);
        // resuming from the checkpoint reads the stored original
        const stored = original;
        made = this.makeThumbnails(await this.stored(() => this.storage.read(stored.key), 'read the original', true));
      }
      const { thumbnails, placeholder } = await (made as Promise<Made>);

      // the stage change and the writes go at once: a cancel meanwhile leaves files the sweep removes
      const [entered, written] = await Promise.allSettled([
        this.enter(record, 'storing', ctx),
        Promise.all(
          thumbnails.map(async (t): Promise<StoredThumbnail> => {
            const key = `${record.fileToken}/thumb-${t.size}-${run}.${t.format}`;
            await this.stored(() => this.storage.put(key, t.data), `store thumbnail ${t.size}`, true);
            return { size: t.size, key, width: t.width, height: t.height, format: t.format, bytes: t.data.length };
          }),
        ),
      ]);
      if (entered.status === 'rejected') throw entered.reason;
      if (written.status === 'rejected') throw written.reason;
      const thumbs = written.value;
      const outcome = await this.store.complete(record, { image: original, thumbnails: thumbs, ...(placeholder ? { placeholder } : {}) }, this.report(ctx, 'done'));
      if (outcome !== 'ok') throw new Superseded();
      // files of earlier runs that the result does not name (written before they failed or died)
      // go now rather than at the end of the retention; a tidy that fails leaves them to it
      if (ctx.ranBefore) await this.storage.removeOthers(record.fileToken, new Set([original.key, ...thumbs.map((t) => t.key)])).catch(() => undefined);
      ctx.onStage('done', STAGE_PROGRESS.done);
      return { status: 'completed', upstreamCalled };
    } catch (err) {
      if (err instanceof Superseded) return { status: 'cancelled' };
      if (ctx.signal.aborted && (await this.isTerminalNow(ref.id))) return { status: 'cancelled' };
      // an outage longer than the bytes are kept for counts against the attempts again
      if (err instanceof StorageUnavailable && (await this.store.now()) - Date.parse(record.createdAt) >= STORAGE_WAIT_MS) {
        throw new GenerationFailure(err.code, err.message, true);
      }
      throw err;
    }
  }

  private makeThumbnails(input: Buffer): Promise<Made> {
    return this.cpu.run(async () => {
      const end = this.opts.metrics?.thumbnailDuration.startTimer();
      try {
        return await (this.opts.images ?? sharpImageStage).thumbnails(input, this.opts.thumbnails);
      } finally {
        end?.();
      }
    });
  }

  private report(ctx: RunContext, stage: Stage): JobReport | undefined {
    return ctx.job && { job: ctx.job, line: `stage=${stage} progress=${STAGE_PROGRESS[stage]} attempt=${ctx.attempt}` };
  }

  /**
   * The original's bytes, from the cheapest source that has them: spooled bytes, the
   * checkpointed URL, or a new upstream call; then validated, stored and checkpointed. All of
   * it runs under the generation's lease, from the claim until the original is stored: a
   * runner handed the job while another still works on it (a lost lock) waits instead of
   * calling the upstream or fetching a one-time URL a second time. A runner that dies leaves
   * the lease to run out.
   */
  private async secureOriginal(
    record: GenerationRecord,
    claim: UpstreamClaim,
    owner: string,
    run: string,
    leaseMs: number,
    ctx: RunContext,
    /** Given the bytes once they are known to be an image, before they are stored. */
    onImage: (data: Buffer) => Promise<unknown>,
  ): Promise<{ original: StoredImage; upstreamCalled: boolean }> {
    const id = record.id;
    if (claim.outcome === 'busy') throw new UpstreamBusy(claim.retryInMs);
    // the claim was made in the step that read the record without an original: anything but
    // `ok` means the record ended meanwhile
    if (claim.outcome !== 'ok') throw new Superseded();
    try {
      // the claim read the checkpoints as they are now, not as this attempt first saw them
      let { upstreamUrl } = claim;
      let data: Buffer | undefined;
      let upstreamCalled = false;
      if (claim.spoolKey) {
        data = (await this.store.readSpool(claim.spoolKey)) ?? undefined;
        // spooled bytes past their time are gone: forget them
        if (!data) await this.store.transition(record, { spoolKey: null });
      }
      const spooled = data !== undefined;
      if (!data && !upstreamUrl) {
        upstreamCalled = true;
        const generated = await this.provider.generate(record.request, { signal: ctx.signal });
        if (generated.kind === 'url') {
          upstreamUrl = generated.url;
          const url = upstreamUrl;
          // the URL is paid for: checkpoint it, and give the download a full lease of its own
          await this.keeping(ctx, () => this.store.checkpoint(record, { upstreamUrl: url }));
          await this.keeping(ctx, () => this.store.claimUpstream(record, owner, leaseMs));
        } else {
          data = generated.data;
        }
      }
      if (!data && upstreamUrl) {
        await this.enter(record, 'downloading', ctx);
        try {
          data = (await downloadImage(upstreamUrl, { signal: ctx.signal, timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxDownloadBytes })).data;
          this.opts.metrics?.downloadBytes.inc(data.length);
        } catch (err) {
          // an expired URL is useless on retry: forget it so the next attempt asks again
          if (err instanceof GenerationFailure && err.code === ERROR_CODES.downloadExpired) await this.store.checkpoint(record, { upstreamUrl: null });
          throw err;
        }
      }
      if (!data) throw new GenerationFailure(ERROR_CODES.internal, 'Provider returned no image', true);
      const bytes = data;
      const info = await (this.opts.images ?? sharpImageStage).probe(bytes, this.opts.thumbnails.maxPixels);
      const key = `${record.fileToken}/original-${run}.${info.ext}`;
      // an attempt that fails from here on leaves the thumbnails unused: nothing waits on them
      onImage(bytes).catch(() => undefined);
      try {
        await this.putWithRetries(key, bytes, 'store the original');
      } catch (err) {
        // never pay again for bytes we already hold: keep them for the next attempt (while the
        // spool has room: past it, the attempt counts and a later one pays again)
        const held = spooled || (await this.store.spool(record, bytes, SPOOL_SECONDS, this.opts.spoolBudgetBytes).catch(() => false));
        throw held ? new StorageUnavailable((err as Error).message) : err;
      }
      const original: StoredImage = { key, width: info.width, height: info.height, format: info.format, bytes: bytes.length };
      // the checkpoint ends the lease and begins processing
      const checkpointed = await this.keeping(ctx, () => this.store.checkpoint(record, { original, upstreamUrl: null, spoolKey: null }, { stage: 'processing', report: this.report(ctx, 'processing') }));
      if (checkpointed !== 'ok') throw new Superseded();
      if (claim.spoolKey) await this.store.dropSpool(id).catch(() => undefined);
      return { original, upstreamCalled };
    } catch (err) {
      await this.store.releaseUpstream(record).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A write that keeps what was just paid for (an upstream URL, a downloaded and stored original):
   * while Redis refuses writes it is made again here, holding what it keeps, rather than thrown,
   * which would lose that with the run (a one-time URL fetched already cannot be fetched again).
   */
  private keeping<T>(ctx: RunContext, write: () => Promise<T>): Promise<T> {
    return waitingOutWriteRefusals(write, ctx.signal, (refusal, waitMs) => ctx.onWriteRefused?.(refusal, waitMs));
  }

  /** Brief storage trouble is retried in place before it costs an attempt. */
  private async putWithRetries(key: string, data: Buffer, what: string): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        await this.stored(() => this.storage.put(key, data), what);
        return;
      } catch (err) {
        const delay = PUT_RETRY_DELAYS_MS[i];
        if (delay === undefined) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * Storage trouble (disk full, a flaky mount, a store that is down) is worth retrying; the
   * checkpoint keeps the upstream paid once. `held`: the original is stored already, so the
   * failure is a wait for the store (StorageUnavailable), not an attempt.
   */
  private async stored<T>(op: () => Promise<T>, what: string, held = false): Promise<T> {
    try {
      return await op();
    } catch (err) {
      const message = `Could not ${what}: ${storageErrorText(err)}`;
      throw held ? new StorageUnavailable(message) : new GenerationFailure(ERROR_CODES.storageFailed, message, true);
    }
  }

  private async enter(ref: GenerationRef, stage: Stage, ctx: RunContext): Promise<void> {
    await this.checkAborted(ref, ctx);
    // the record decides; the job's progress and log line are for the dashboard
    if ((await this.store.setStage(ref, stage, this.report(ctx, stage))) !== 'ok') throw new Superseded();
    ctx.onStage(stage, STAGE_PROGRESS[stage]);
  }

  private async checkAborted(ref: GenerationRef, ctx: RunContext): Promise<void> {
    if (!ctx.signal.aborted) return;
    // only a terminal record (cancelled) ends the job quietly; any other abort is a failed attempt
    if (await this.isTerminalNow(ref.id)) throw new Superseded();
    throw new GenerationFailure(ERROR_CODES.internal, 'Attempt aborted', true);
  }

  private async isTerminalNow(id: string): Promise<boolean> {
    const r = await this.store.get(id);
    return !r || isTerminal(r.status);
  }
}
