import {
  generateJobOptions,
  JOBS,
  newFileToken,
  newId,
  watchGeneration,
  type CreateGenerationInput,
  type GenerationRecord,
  type GenerationStatus,
} from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem, notFound } from '../http/problem';
import { claimIdempotencyKey, type IdempotencyClaim } from './idempotency';

const PROVISIONAL_RECORD_SECONDS = 600;

/** Creating, reading, waiting on and cancelling generations, for one tenant at a time. */
export class GenerationsService {
  constructor(private readonly ctx: ApiContext) {}

  private newRecord(tenant: string, input: CreateGenerationInput): GenerationRecord {
    return {
      id: newId('gen'),
      tenant,
      status: 'queued',
      stage: 'queued',
      progress: 0,
      request: { topic: input.topic, style: input.style, size: input.size },
      metadata: input.metadata ?? null,
      priority: input.priority,
      ...(input.webhook ? { webhook: input.webhook } : {}),
      attempts: 0,
      createdAt: new Date().toISOString(),
      fileToken: newFileToken(),
    };
  }

  private async enqueue(record: GenerationRecord): Promise<void> {
    const { store, queues, config } = this.ctx;
    // provisional until its job exists: if Redis goes away in between, the record expires
    await store.create(record, PROVISIONAL_RECORD_SECONDS);
    try {
      await queues.generate.add(
        JOBS.generate.name,
        { generationId: record.id, tenant: record.tenant },
        generateJobOptions(record.id, record.priority, { maxAttempts: config.GENERATOR_MAX_ATTEMPTS, backoffMs: config.GENERATOR_BACKOFF_MS }),
      );
      await store.confirm(record.id);
    } catch (err) {
      // no job, no record: a generation that cannot run must not sit "queued" forever
      await this.ctx.redis.del(this.ctx.keys.generation(record.id)).catch(() => undefined);
      throw err;
    }
  }

  /** With an idempotency key, a repeat returns the generation the key first made (`replayed`). */
  async create(tenant: string, input: CreateGenerationInput, idempotencyKey?: string): Promise<{ record: GenerationRecord; replayed: boolean }> {
    const record = this.newRecord(tenant, input);
    const replay = await this.enqueueOnce(record, input, idempotencyKey);
    return replay ? { record: replay, replayed: true } : { record, replayed: false };
  }

  /** Enqueues unless the idempotency key was used before; then answers the earlier generation. */
  private async enqueueOnce(record: GenerationRecord, input: CreateGenerationInput, idempotencyKey?: string): Promise<GenerationRecord | null> {
    if (idempotencyKey === undefined) {
      await this.enqueue(record);
      return null;
    }
    let claim: IdempotencyClaim | null = await claimIdempotencyKey(this.ctx, record.tenant, idempotencyKey, input, record.id);
    if (claim.kind === 'replay') {
      // the first request may still be writing its record
      for (let i = 0; i < 25; i++) {
        const existing = await this.ctx.store.getForTenant(claim.generationId, record.tenant);
        if (existing) return existing;
        await new Promise((r) => setTimeout(r, 40));
      }
      claim = await claim.takeOver();
      // someone else took it over first: answer as a repeat of theirs
      if (!claim) return this.enqueueOnce(record, input, idempotencyKey);
    }
    if (claim.kind !== 'new') return this.enqueueOnce(record, input, idempotencyKey);
    try {
      await this.enqueue(record);
    } catch (err) {
      await claim.release().catch(() => undefined);
      throw err;
    }
    await claim.confirm().catch(() => undefined);
    return null;
  }

  /** Creates and waits up to `waitMs` for the end, woken by pub/sub; answers the latest record. */
  async createAndWait(tenant: string, input: CreateGenerationInput, waitMs: number, aborted?: AbortSignal, idempotencyKey?: string): Promise<{ record: GenerationRecord; replayed: boolean }> {
    let record = this.newRecord(tenant, input);
    let watch = await watchGeneration(this.ctx.hub, this.ctx.store, this.ctx.keys, record.id);
    let replayed = false;
    try {
      const replay = await this.enqueueOnce(record, input, idempotencyKey);
      if (replay) {
        await watch.close();
        record = replay;
        replayed = true;
        watch = await watchGeneration(this.ctx.hub, this.ctx.store, this.ctx.keys, record.id);
      }
      const latest = aborted?.aborted
        ? null
        : await Promise.race([
            watch.untilTerminal(waitMs),
            new Promise<null>((resolve) => aborted?.addEventListener('abort', () => resolve(null), { once: true })),
          ]);
      // ended early (client gone, shutdown): the generation as it stands now
      return { record: latest ?? (await this.ctx.store.get(record.id).catch(() => null)) ?? record, replayed };
    } finally {
      await watch.close();
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

  /** Queued: removed at once. Active: the worker holding it aborts at once. Terminal: 409. */
  async cancel(tenant: string, id: string): Promise<GenerationRecord> {
    const record = await this.get(tenant, id);
    const outcome = await this.ctx.store.cancel(id);
    if (outcome === 'terminal') {
      const now = (await this.ctx.store.get(id))?.status ?? record.status;
      throw new HttpProblem(409, 'Conflict', `Generation ${id} is already ${now} and cannot be cancelled`);
    }
    if (outcome === 'missing') throw notFound(`Generation ${id}`);
    const job = await this.ctx.queues.generate.getJob(id);
    // an active job is locked by its worker and refuses removal; that worker stops via the cancel channel
    if (job) await job.remove().catch(() => undefined);
    await this.ctx.redis.publish(this.ctx.keys.cancelChannel(), id);
    return this.get(tenant, id);
  }
}
