import {
  generateJobOptions,
  generateJobName,
  isTerminal,
  newFileToken,
  newId,
  watchGeneration,
  type CreateGenerationInput,
  type GenerateJobInput,
  type GenerationRecord,
  type GenerationStatus,
  type TerminalWatch,
} from '@imagegen/shared';
import type { ApiContext } from '../context';
import type { Reservation } from './quotas';
import { HttpProblem, notFound } from '../http/problem';
import { IDEMPOTENCY_SECONDS, IdempotencyKey } from './idempotency';
import { outcomeOfLostReply } from './lost-reply';

/** A provisional record this old was left by a request that died before enqueueing its job. */
const ABANDONED_AFTER_MS = 30_000;

export interface CreateOptions {
  /** The request's Idempotency-Key, for its validated body (see `idempotencyKey`). */
  idempotency?: IdempotencyKey;
  /** Runs with each new id before its record is written (to subscribe to it first). */
  beforeCreate?: (id: string) => Promise<unknown>;
  /** Runs once the record is written and its job enqueued (or a replay found). */
  afterCreate?: () => Promise<unknown>;
  /** The submitting request's id: carried into the job so the worker's log lines share it. */
  requestId?: string;
  /** The request's quota reservation: ended in the same step as the record is written. */
  reservation?: Reservation;
  /** The channel the worker publishes the record's end to (a waiting request's process). */
  notify?: string;
}

/** Creating, reading, waiting on and cancelling generations, for one tenant at a time. */
export class GenerationsService {
  constructor(private readonly ctx: ApiContext) {}

  private newRecord(tenant: string, input: CreateGenerationInput): Omit<GenerationRecord, 'createdAt'> {
    return {
      id: newId('gen', this.ctx.clock.now()),
      tenant,
      status: 'queued',
      stage: 'queued',
      progress: 0,
      request: { topic: input.topic, style: input.style, size: input.size },
      metadata: input.metadata ?? null,
      priority: input.priority,
      ...(input.webhook ? { webhook: input.webhook } : {}),
      attempts: 0,
      fileToken: newFileToken(),
    };
  }

  /** The Idempotency-Key `key` of a request with the validated body `input`. */
  idempotencyKey(tenant: string, key: string, input: CreateGenerationInput): IdempotencyKey {
    return IdempotencyKey.of(this.ctx.keys, tenant, key, input);
  }

  /**
   * The generation a repeat with this Idempotency-Key and body stands for, if the key already
   * holds one that is there to answer (else the create decides); 409 for another body. Read
   * before quotas: answering a repeat costs none.
   */
  async replayOf(tenant: string, idem: IdempotencyKey): Promise<GenerationRecord | null> {
    const heldId = await idem.peek(this.ctx.redis);
    if (heldId === undefined) return null;
    const existing = await this.ctx.store.getForTenant(heldId, tenant);
    return existing && !(await this.abandoned(existing)) ? existing : null;
  }

  /**
   * Creates the record and enqueues its job, in one step. With an idempotency key, the key
   * is claimed in that same step, so it maps to exactly one generation however requests race
   * or die; a repeat answers that generation (`replayed`).
   */
  async create(tenant: string, input: CreateGenerationInput, opts: CreateOptions = {}): Promise<{ record: GenerationRecord; replayed: boolean }> {
    const { store, queues } = this.ctx;
    const idem = opts.idempotency;
    for (let tries = 0; ; tries++) {
      const fresh = { ...this.newRecord(tenant, input), ...(opts.notify ? { notify: opts.notify } : {}) };
      await opts.beforeCreate?.(fresh.id);
      let created: Awaited<ReturnType<typeof store.createWithJob>>;
      try {
        created = await store.createWithJob(fresh, queues.generate, this.jobOf(fresh, opts.requestId), {
          ...(idem ? { idempotency: idem.claim(fresh.id, IDEMPOTENCY_SECONDS) } : {}),
          ...(opts.reservation ? { reservation: opts.reservation.handOver() } : {}),
        });
      } catch (err) {
        // a lost reply may hide a create that ran (record and job are written in one script)
        const ran = await outcomeOfLostReply(err, () => store.getForTenant(fresh.id, tenant));
        if (!ran) throw err;
        created = { outcome: 'created', record: ran };
      }
      if (created.outcome === 'created') {
        await opts.afterCreate?.();
        this.ctx.logger.info('generation queued', { generationId: created.record.id, tenant, requestId: opts.requestId, priority: created.record.priority });
        return { record: created.record, replayed: false };
      }
      // only a claim can be held: `idem` is set here
      const key = idem as IdempotencyKey;
      const heldId = key.heldGeneration(created.value);
      const existing = await store.getForTenant(heldId, tenant);
      if (existing && !(await this.abandoned(existing))) return { record: existing, replayed: true };
      // gone (its retention ended before its key's), or left provisional by a request that died
      // before enqueueing its job: the key is free again
      await store.discard(existing ?? { id: heldId, tenant }, key.claim(heldId, 0));
      if (tries < 3) continue;
      throw new HttpProblem(409, 'Conflict', 'A request with this Idempotency-Key is being retried; try again');
    }
  }

  private jobOf(record: Pick<GenerationRecord, 'id' | 'tenant' | 'request' | 'priority'>, requestId: string | undefined) {
    const { config, store } = this.ctx;
    return {
      name: generateJobName(record.request.topic),
      data: { generationId: record.id, tenant: record.tenant, ...(requestId ? { requestId } : {}) } satisfies GenerateJobInput,
      opts: generateJobOptions(record.id, record.priority, { maxAttempts: config.GENERATOR_MAX_ATTEMPTS, backoffMs: config.GENERATOR_BACKOFF_MS, retentionSeconds: store.retentionSeconds }),
    };
  }

  /**
   * A record left by an older release, which wrote a record before its job, when its request
   * died in between: still provisional long after any live request would have confirmed it,
   * and no job.
   */
  private async abandoned(record: GenerationRecord): Promise<boolean> {
    if (record.status !== 'queued' || !(await this.ctx.store.isProvisional(record.id))) return false;
    if ((await this.ctx.store.now()) - Date.parse(record.createdAt) < ABANDONED_AFTER_MS) return false;
    return (await this.ctx.queues.generate.getJob(record.id)) === undefined;
  }

  /**
   * Creates and waits up to `waitMs` for the end, woken by pub/sub; answers the latest
   * record. Each new record is watched before it is written, and a replayed one before it
   * is re-read, so a generation that ends at once is never missed. `signal` ends the wait
   * early (client gone, shutdown): the generation as it stands then.
   */
  async createAndWait(tenant: string, input: CreateGenerationInput, waitMs: number, signal: AbortSignal, opts: CreateOptions = {}): Promise<{ record: GenerationRecord; replayed: boolean }> {
    const channel = this.ctx.waiterChannel;
    if (opts.idempotency === undefined && channel.isReady) {
      // the record names this process's channel: no subscription of its own
      let watch: TerminalWatch | undefined;
      try {
        const { record } = await this.create(tenant, input, { ...opts, notify: channel.channel, beforeCreate: async (id) => (watch = channel.watch(id)) });
        const latest = await (watch as TerminalWatch).untilTerminal(waitMs, signal, record);
        return { record: latest ?? record, replayed: false };
      } finally {
        void watch?.close();
      }
    }
    const watches = new Map<string, TerminalWatch>();
    const watch = async (id: string): Promise<TerminalWatch> => {
      let w = watches.get(id);
      if (!w) {
        w = await watchGeneration(this.ctx.hub, this.ctx.store, this.ctx.keys, id);
        watches.set(id, w);
      }
      return w;
    };
    try {
      const created = await this.create(tenant, input, { ...opts, beforeCreate: (id) => watch(id) });
      // a record created after its watch began is known as it was written; a replayed one is read
      const latest = await (await watch(created.record.id)).untilTerminal(waitMs, signal, created.replayed ? undefined : created.record);
      return { record: latest ?? created.record, replayed: created.replayed };
    } finally {
      // the answer does not wait for the unsubscribe (it cannot fail the request)
      for (const w of watches.values()) void w.close().catch(() => undefined);
    }
  }

  async get(tenant: string, id: string): Promise<GenerationRecord> {
    const record = await this.ctx.store.getForTenant(id, tenant);
    if (!record) throw notFound(`Generation ${id}`);
    return record;
  }

  list(tenant: string, opts: { status?: GenerationStatus; limit: number; cursor?: string }) {
    return this.ctx.store.list(tenant, opts);
  }

  /**
   * Queued: removed at once. Active: the worker holding it aborts at once. Terminal: 409, unless
   * it was cancelled since it was read here: by this very call, sent again by the Redis client
   * after a reconnect lost its reply, or by another cancel at the same moment; either way it is
   * cancelled as asked, and its job is stopped as for any cancel.
   */
  async cancel(tenant: string, id: string): Promise<GenerationRecord> {
    const record = await this.get(tenant, id);
    // an item of a batch still being written waits for it: with every item ended before the
    // batch is confirmed, nothing would be left to complete it
    if (record.batchId && !isTerminal(record.status) && (await this.ctx.batches.isBeingWritten(record.batchId))) {
      throw new HttpProblem(409, 'Conflict', `Generation ${id} belongs to batch ${record.batchId}, which is still being accepted; try again shortly`, undefined, { 'Retry-After': '1' });
    }
    const outcome = await this.ctx.store.cancel(record);
    if (outcome === 'terminal') {
      const now = (await this.ctx.store.get(id))?.status ?? record.status;
      if (now !== 'cancelled' || isTerminal(record.status)) throw new HttpProblem(409, 'Conflict', `Generation ${id} is already ${now} and cannot be cancelled`);
    }
    if (outcome === 'missing') throw notFound(`Generation ${id}`);
    const job = await this.ctx.queues.generate.getJob(id);
    // an active job is locked by its worker and refuses removal; that worker stops via the cancel channel
    if (job) await job.remove().catch(() => undefined);
    await this.ctx.redis.publish(this.ctx.keys.cancelChannel(), id);
    return this.get(tenant, id);
  }
}
