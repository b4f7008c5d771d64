import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import type { GenerationRecord, GenerationStatus, Stage, StoredImage, StoredResult, GenerationErrorInfo } from '../schemas/generation';
import { STAGE_PROGRESS } from '../schemas/generation';
import type { WebhookEvent } from '../schemas/request';
import { decodeRecord, encodeFields } from './codec';
import { CLAIM_UPSTREAM_LUA, CONFIRM_LUA, TRANSITION_LUA } from './transition.lua';

export type TransitionOutcome = 'ok' | 'missing' | 'terminal';

/** The event published on a generation's channel with each change. */
export interface GenerationEvent {
  type: WebhookEvent | 'generation.queued' | 'generation.retrying';
  status: GenerationStatus;
}

/** A change to a record: `null` deletes a field; `?startedAt` is set only if absent. */
export type RecordPatch = { [K in keyof GenerationRecord]?: GenerationRecord[K] | null } & { '?startedAt'?: string };

export type UpstreamClaim = { outcome: 'ok' | 'terminal' | 'checkpointed' | 'missing' } | { outcome: 'busy'; leaseExpiresAt: number };

type TransitionRedis = Redis & {
  imagegenTransition(key: string, expiryKey: string, outboxKey: string, ...args: (string | number)[]): Promise<TransitionOutcome>;
  imagegenClaimUpstream(key: string, owner: string, now: number, leaseMs: number): Promise<[string, string]>;
  imagegenConfirm(key: string): Promise<number>;
};

export interface ListOptions {
  status?: GenerationStatus;
  limit: number;
  cursor?: string;
}

/**
 * Generation records: one Redis hash per generation, written at every stage, readable
 * until retention ends whatever BullMQ has trimmed.
 */
export class GenerationStore {
  private readonly redis: TransitionRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
  ) {
    if (!('imagegenTransition' in redis)) {
      redis.defineCommand('imagegenTransition', { numberOfKeys: 3, lua: TRANSITION_LUA });
      redis.defineCommand('imagegenClaimUpstream', { numberOfKeys: 1, lua: CLAIM_UPSTREAM_LUA });
      redis.defineCommand('imagegenConfirm', { numberOfKeys: 1, lua: CONFIRM_LUA });
    }
    this.redis = redis as TransitionRedis;
  }

  /**
   * Writes a new record. With `provisionalSeconds` it expires unless `confirm`ed (or touched by
   * a worker) in time, so a record whose job never got enqueued cannot sit "queued" forever.
   */
  async create(record: GenerationRecord, provisionalSeconds?: number): Promise<void> {
    const key = this.keys.generation(record.id);
    const multi = this.redis.multi().hset(key, ...encodeFields(record));
    if (provisionalSeconds) multi.expire(key, provisionalSeconds);
    await multi.zadd(this.keys.tenantGenerations(record.tenant), 0, record.id).exec().then(throwOnMultiError);
  }

  /** The record's job exists: keep it until it ends (a record already finished keeps its retention). */
  async confirm(id: string): Promise<void> {
    await this.redis.imagegenConfirm(this.keys.generation(id));
  }

  /** See CLAIM_UPSTREAM_LUA: a lease of `leaseMs` on calling the upstream for this generation. */
  async claimUpstream(id: string, owner: string, leaseMs: number): Promise<UpstreamClaim> {
    const [outcome, detail] = await this.redis.imagegenClaimUpstream(this.keys.generation(id), owner, Date.now(), leaseMs);
    if (outcome === 'busy') return { outcome, leaseExpiresAt: Number(detail) };
    return { outcome: outcome as 'ok' | 'terminal' | 'checkpointed' | 'missing' };
  }

  /** Keeps paid-for bytes that could not be stored, so the next attempt resumes from them. */
  async spool(id: string, data: Buffer, ttlSeconds: number): Promise<void> {
    const key = this.keys.spool(id);
    await this.redis.set(key, data, 'EX', ttlSeconds);
    await this.transition(id, { spoolKey: key, upstreamLease: null });
  }

  readSpool(key: string): Promise<Buffer | null> {
    return this.redis.getBuffer(key);
  }

  async dropSpool(id: string): Promise<void> {
    await this.redis.del(this.keys.spool(id));
  }

  async get(id: string): Promise<GenerationRecord | null> {
    return decodeRecord(await this.redis.hgetall(this.keys.generation(id)));
  }

  /** A tenant's own generation, or null: another tenant's id reads exactly like an unknown one. */
  async getForTenant(id: string, tenant: string): Promise<GenerationRecord | null> {
    const record = await this.get(id);
    return record && record.tenant === tenant ? record : null;
  }

  async transition(id: string, patch: RecordPatch, event?: GenerationEvent['type']): Promise<TransitionOutcome> {
    return this.redis.imagegenTransition(
      this.keys.generation(id),
      this.keys.fileExpiry(),
      this.keys.webhookOutbox(),
      this.keys.generationChannel(id),
      event ?? '',
      this.retentionSeconds,
      ...encodeFields(patch),
    );
  }

  markActive(id: string, attempts: number): Promise<TransitionOutcome> {
    return this.transition(
      id,
      { status: 'active', stage: 'generating', progress: STAGE_PROGRESS.generating, attempts, '?startedAt': new Date().toISOString() },
      'generation.started',
    );
  }

  setStage(id: string, stage: Stage): Promise<TransitionOutcome> {
    return this.transition(id, { stage, progress: STAGE_PROGRESS[stage] }, 'generation.progress');
  }

  /** Records a stage's result; the upstream lease ends with it. */
  checkpoint(id: string, patch: { upstreamUrl?: string | null; original?: StoredImage; spoolKey?: null }): Promise<TransitionOutcome> {
    return this.transition(id, { ...patch, upstreamLease: null });
  }

  releaseUpstream(id: string): Promise<TransitionOutcome> {
    return this.transition(id, { upstreamLease: null });
  }

  complete(id: string, result: StoredResult): Promise<TransitionOutcome> {
    return this.transition(
      id,
      { status: 'completed', stage: 'done', progress: 100, result, error: null, upstreamUrl: null, completedAt: new Date().toISOString() },
      'generation.completed',
    );
  }

  fail(id: string, error: GenerationErrorInfo): Promise<TransitionOutcome> {
    return this.transition(id, { status: 'failed', error, completedAt: new Date().toISOString() }, 'generation.failed');
  }

  /** A failed attempt that will be tried again: back to queued, the error kept for the curious. */
  retrying(id: string, error: GenerationErrorInfo): Promise<TransitionOutcome> {
    return this.transition(id, { status: 'queued', error }, 'generation.retrying');
  }

  cancel(id: string): Promise<TransitionOutcome> {
    return this.transition(
      id,
      { status: 'cancelled', completedAt: new Date().toISOString(), error: { code: 'cancelled', message: 'Cancelled by request', retryable: false } },
      'generation.cancelled',
    );
  }

  /** File tokens whose files are due for removal, oldest first. */
  dueFileTokens(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.fileExpiry(), '-inf', now, 'LIMIT', 0, limit);
  }

  async forgetFileTokens(tokens: string[]): Promise<void> {
    if (tokens.length) await this.redis.zrem(this.keys.fileExpiry(), ...tokens);
  }

  /** Newest first; the cursor is the last id of the previous page (ids sort by creation). */
  async list(tenant: string, opts: ListOptions): Promise<{ records: GenerationRecord[]; nextCursor: string | null }> {
    const key = this.keys.tenantGenerations(tenant);
    // one record past the page tells whether another page exists
    const wanted = opts.limit + 1;
    const records: GenerationRecord[] = [];
    const batch = Math.max(wanted * 2, 50);
    let cursor = opts.cursor;
    while (records.length < wanted) {
      const ids = await this.redis.zrevrangebylex(key, cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, batch);
      if (ids.length === 0) break;
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hgetall(this.keys.generation(id));
      const hashes = (await pipeline.exec()) ?? [];
      const expired: string[] = [];
      ids.forEach((id, i) => {
        const record = decodeRecord((hashes[i]?.[1] ?? {}) as Record<string, string>);
        if (!record) expired.push(id);
        else if ((!opts.status || record.status === opts.status) && records.length < wanted) records.push(record);
      });
      // records past retention leave their index entry behind; prune it as we pass
      if (expired.length) await this.redis.zrem(key, ...expired);
      cursor = ids[ids.length - 1];
      if (ids.length < batch) break;
    }
    const hasMore = records.length > opts.limit;
    const page = records.slice(0, opts.limit);
    return { records: page, nextCursor: hasMore ? (page[page.length - 1]?.id ?? null) : null };
  }
}

function throwOnMultiError(results: [Error | null, unknown][] | null): void {
  for (const [err] of results ?? []) if (err) throw err;
}
