import { Job, type JobsOptions, type Queue } from 'bullmq';
import DataLoader from 'dataloader';
import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { redisTimeMs } from '../redis-clock';
import type { GenerationErrorInfo, GenerationRecord, GenerationStatus, Stage, StoredImage, StoredResult } from '../schemas/generation';
import { STAGE_PROGRESS } from '../schemas/generation';
import type { GenerationMessage } from '../schemas/channel';
import { decodeRecord, encodeFields, packFields } from './codec';
import { CLAIM_UPSTREAM_LUA } from './lua/claim-upstream';
import { CREATE_ARG_COUNT, CREATE_GUARD_LUA, CREATE_KEY_COUNT, CREATE_LUA, DISCARD_LUA } from './lua/create';
import { SPOOL_LUA } from './lua/spool';
import { NOW } from './lua/pieces';
import { CANCEL_ITEMS_LUA, START_LUA, TRANSITION_KEY_COUNT, TRANSITION_LUA } from './lua/transition';
import { BULLMQ_ADD_ARGS, captureJobAdd, withJobAdds } from './lua/with-job-add';
import { pageFromIndex } from './index-page';


/** Items of one batch cancelled per script. */
const CANCELS_PER_SCRIPT = 100;
export type TransitionOutcome = 'ok' | 'missing' | 'terminal';


/** Which generation, and whose: the tenant names the indexes a change updates. */
export type GenerationRef = Pick<GenerationRecord, 'id' | 'tenant'> & { batchId?: string | undefined };

/** A change to a record: `null` deletes a field; `?startedAt` is set only if absent; `NOW` is the change's time (Redis's; see NOW). */
export type RecordPatch = { [K in keyof GenerationRecord]?: GenerationRecord[K] | null } & { '?startedAt'?: string };

/**
 * `ok`: the lease is this runner's, with the checkpoints as they are now (a URL to download,
 * spooled bytes); `checkpointed`: the original is stored already; `busy`: another runner holds
 * the lease for `retryInMs` more.
 */
export type UpstreamClaim =
  | { outcome: 'ok'; upstreamUrl?: string; spoolKey?: string }
  | { outcome: 'terminal' }
  | { outcome: 'checkpointed' }
  | { outcome: 'missing' }
  | { outcome: 'busy'; retryInMs: number };

/** A request's reservation against its tenant's queued cap, ended when its record is written. */
export interface QuotaReservation {
  /** The tenant's reservations (see `keys.queuedReservations`). */
  key: string;
  entry: string;
}

/**
 * Part of a reservation handed to the script that writes that many records (a chunk of a batch):
 * `entry` is replaced by `rest` ('' once nothing is left reserved) as they are indexed, so they
 * are never counted twice, reserved and queued.
 */
export interface QuotaShrink extends QuotaReservation {
  rest: string;
}

/** An idempotency key claimed together with the record it maps to. */
export interface IdempotencyClaim {
  /** The Redis key (see `keys.idempotency`). */
  key: string;
  value: string;
  ttlSeconds: number;
}

/** A BullMQ job that record changes are reported to (see job-report.ts): the keys BullMQ keeps it under. */
export interface JobKeys {
  hash: string;
  events: string;
  meta: string;
  logs: string;
}

/** What a change tells the job: a line for its log (its progress follows the record's). */
export interface JobReport {
  job: JobKeys;
  line: string;
}

/** A job's start (see `GenerationStore.start`). */
export type StartOutcome = { outcome: 'missing' | 'terminal' } | { outcome: 'ok'; record: GenerationRecord; claim: UpstreamClaim };

export type CreateOutcome = { outcome: 'created'; record: GenerationRecord } | { outcome: 'held'; value: string };

/** Failed or cancelled generations' files are removed after this long (no URL points at them). */
export const FAILED_FILES_GRACE_SECONDS = 3600;

/** Enough to take most of a call's cost off each create, few enough that Redis runs one group while the next is sent. */
const CREATE_GROUP_MAX = 8;

/** What a cancel by request writes. */
const CANCELLED: RecordPatch = { status: 'cancelled', completedAt: NOW, error: { code: 'cancelled', message: 'Cancelled by request', retryable: false } };

/** One create's part of a shared call: its KEYS (BullMQ's, then CREATE_LUA's) and its ARGV likewise. */
interface CreateItem {
  keys: unknown[];
  args: unknown[];
}

type StoreRedis = Redis & {
  imagegenTransition(...args: (string | number)[]): Promise<TransitionOutcome>;
  imagegenStart(...args: (string | number)[]): Promise<[string, string?, string?, string?, string[]?]>;
  imagegenCreate(...args: (string | number)[]): Promise<[string, string]>;
  imagegenSpool(key: string, index: string, data: Buffer, ttlSeconds: number, budgetBytes: number): Promise<number>;
  imagegenDiscard(...args: (string | number)[]): Promise<number>;
  imagegenClaimUpstream(key: string, usage: string, owner: string, leaseMs: number): Promise<[string, string, string]>;
  imagegenCancelItems(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

export interface ListOptions {
  status?: GenerationStatus;
  limit: number;
  cursor?: string;
}

/**
 * Generation records: one Redis hash per generation, written at every stage, readable
 * until retention ends whatever BullMQ has trimmed. Every write is one script, so the
 * record, its indexes and its bounds never disagree.
 */
export class GenerationStore {
  private readonly redis: StoreRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    readonly retentionSeconds: number,
  ) {
    if (!('imagegenTransition' in redis)) {
      redis.defineCommand('imagegenTransition', { numberOfKeys: TRANSITION_KEY_COUNT, lua: TRANSITION_LUA });
      redis.defineCommand('imagegenStart', { numberOfKeys: TRANSITION_KEY_COUNT, lua: START_LUA });
      redis.defineCommand('imagegenCreate', { numberOfKeys: CREATE_KEY_COUNT, lua: CREATE_LUA });
      redis.defineCommand('imagegenSpool', { numberOfKeys: 2, lua: SPOOL_LUA });
      redis.defineCommand('imagegenDiscard', { numberOfKeys: 5, lua: DISCARD_LUA });
      redis.defineCommand('imagegenClaimUpstream', { numberOfKeys: 2, lua: CLAIM_UPSTREAM_LUA });
      redis.defineCommand('imagegenCancelItems', { lua: CANCEL_ITEMS_LUA });
    }
    this.redis = redis as StoreRedis;
  }

  private createKeys(ref: GenerationRef, idempotency?: IdempotencyClaim): string[] {
    const record = this.keys.generation(ref.id);
    return [record, this.keys.tenantGenerations(ref.tenant), this.keys.tenantGenerations(ref.tenant, 'queued'), this.keys.tenants(), idempotency?.key ?? record];
  }

  /** CREATE_LUA's keys and arguments. */
  private createCall(record: Omit<GenerationRecord, 'createdAt'>, provisionalSeconds: number, idempotency?: IdempotencyClaim, reservation?: QuotaReservation): { keys: string[]; args: (string | number)[] } {
    return {
      keys: [...this.createKeys(record, idempotency), reservation?.key ?? this.keys.generation(record.id)],
      args: [record.id, record.tenant, provisionalSeconds, idempotency?.value ?? '', idempotency?.ttlSeconds ?? 0, reservation?.entry ?? '', packFields(encodeFields({ ...record, createdAt: NOW }))],
    };
  }

  /**
   * Writes a new queued record (its `createdAt` is the time in its id, see ID_TIME) and, with `idempotency`,
   * claims that key in the same step; a key already held answers `held` and writes nothing.
   * With `provisionalSeconds` the record expires unless confirmed (or touched by a worker)
   * in time, so a record whose job never got enqueued cannot sit "queued" forever.
   */
  async create(record: Omit<GenerationRecord, 'createdAt'>, opts: { provisionalSeconds?: number; idempotency?: IdempotencyClaim } = {}): Promise<CreateOutcome> {
    const { keys, args } = this.createCall(record, opts.provisionalSeconds ?? 0, opts.idempotency);
    const [outcome, detail] = await this.redis.imagegenCreate(...keys, ...args);
    if (outcome === 'held') return { outcome, value: detail };
    return { outcome: 'created', record: { ...record, createdAt: detail } };
  }

  /**
   * Writes a new record and adds its job in one script: BullMQ's own add script, with the keys
   * and arguments BullMQ built for the job, runs inside the create. Either both exist or
   * neither. With `idempotency` the key is claimed in the same step; a key already held answers
   * `held` and nothing is written. `reservation` (the submitting request's quota reservation)
   * ends in the same step. Creates made at the same moment share one script call (see
   * `createGroup`).
   */
  async createWithJob(
    record: Omit<GenerationRecord, 'createdAt'>,
    queue: Queue,
    job: { name: string; data: unknown; opts: JobsOptions & { jobId: string } },
    opts: { idempotency?: IdempotencyClaim; reservation?: QuotaReservation } = {},
  ): Promise<CreateOutcome> {
    const create = this.createCall(record, 0, opts.idempotency, opts.reservation);
    const add = captureJobAdd(new Job(queue, job.name, job.data, job.opts, job.opts.jobId));
    const bullmqKeys = add.args.length - BULLMQ_ADD_ARGS;
    const [outcome, detail] = await this.createGroup(queue, add.command)
      .load({ keys: [...add.args.slice(0, bullmqKeys), ...create.keys], args: [...add.args.slice(bullmqKeys), ...create.args] })
      .catch((err: unknown) => {
        add.settle(-1);
        throw err;
      });
    // BullMQ's add promise waits for an answer: a job id, or its refusal code
    add.settle(outcome === 'refused' ? detail : record.id);
    if (outcome === 'held') return { outcome, value: String(detail) };
    if (outcome !== 'created') throw new Error(`record ${record.id} was not created: BullMQ refused its job (${detail})`);
    return { outcome, record: { ...record, createdAt: String(detail) } };
  }

  /** By queue and BullMQ add command (standard, prioritized, ...): the creates waiting to share a call. */
  private readonly createGroups = new Map<string, DataLoader<CreateItem, [string, string | number]>>();

  /**
   * Gathers the creates made in one tick for one queue and kind of add into script calls of up
   * to CREATE_GROUP_MAX each: under load, the client's cost per create is mostly the call itself
   * (encoding, the socket write, the reply), not the record. An item's error fails that item only.
   */
  private createGroup(queue: Queue, bullmqCommand: string): DataLoader<CreateItem, [string, string | number]> {
    const groupKey = `${queue.qualifiedName} ${bullmqCommand}`;
    let group = this.createGroups.get(groupKey);
    if (!group) {
      let command: Promise<string> | undefined;
      group = new DataLoader(
        async (items) => {
          // a failed definition (BullMQ's connection not ready yet) is tried again by the next group
          const name = await (command ??= this.defineCreateWithJobs(queue, bullmqCommand).catch((err: unknown) => {
            command = undefined;
            throw err;
          }));
          const keys = items.flatMap((i) => i.keys);
          const answers = await (this.redis as unknown as Record<string, (args: unknown[]) => Promise<unknown[]>>)[name]!([keys.length, ...keys, ...items.flatMap((i) => i.args)]);
          return items.map((_, i) => {
            const answer = answers[i];
            if (!Array.isArray(answer)) return new Error('the create script gave this item no answer');
            return answer[0] === 'error' ? new Error(`the create script failed: ${String(answer[1])}`) : (answer as [string, string | number]);
          });
        },
        { cache: false, maxBatchSize: CREATE_GROUP_MAX },
      );
      this.createGroups.set(groupKey, group);
    }
    return group;
  }

  /** Defines the command that runs BullMQ's `bullmqCommand` inside the creates (see withJobAdds). */
  private async defineCreateWithJobs(queue: Queue, bullmqCommand: string): Promise<string> {
    const name = `imagegenCreateWith:${bullmqCommand}`;
    const script = ((await queue.getBackend().client) as unknown as { scriptsSet?: Record<string, { lua: string; numberOfKeys: number }> }).scriptsSet?.[bullmqCommand];
    if (!script) throw new Error(`BullMQ's ${bullmqCommand} script was not found on its connection`);
    if (!(name in this.redis)) this.redis.defineCommand(name, { lua: withJobAdds(script.lua, script.numberOfKeys, { lua: CREATE_LUA, keys: CREATE_KEY_COUNT, args: CREATE_ARG_COUNT }, CREATE_GUARD_LUA) });
    return name;
  }

  /** Undoes a create whose job was never enqueued (only while the record is provisional); true when it did. */
  async discard(ref: GenerationRef, idempotency?: IdempotencyClaim): Promise<boolean> {
    return (await this.redis.imagegenDiscard(...this.createKeys(ref, idempotency), ref.id, idempotency?.value ?? '')) === 1;
  }

  /** Whether the record still waits to be confirmed (its job may never have been enqueued). */
  async isProvisional(id: string): Promise<boolean> {
    return (await this.redis.pttl(this.keys.generation(id))) > 0;
  }

  /** Redis's clock in ms: the one clock every process on every host agrees on. */
  async now(): Promise<number> {
    return redisTimeMs(this.redis);
  }

  /**
   * A job's start in one step: the record turns active (`attempts`, `startedAt` once), the
   * lease on securing its original is claimed for `owner` (see `claimUpstream`), and the
   * record is read as it then is.
   */
  async start(ref: GenerationRef, attempts: number, owner: string, leaseMs: number, report?: JobReport): Promise<StartOutcome> {
    const [outcome, claim, a, b, flat] = await this.redis.imagegenStart(
      ...this.transitionArgs(ref, 'generation.started', report),
      owner,
      leaseMs,
      ...encodeFields({ status: 'active', stage: 'generating', progress: STAGE_PROGRESS.generating, attempts, '?startedAt': NOW }),
    );
    if (outcome !== 'ok') return { outcome: outcome as 'missing' | 'terminal' };
    const record = decodeRecord(hashOf(flat ?? []));
    if (!record) return { outcome: 'missing' };
    return { outcome: 'ok', record, claim: toClaim(claim ?? 'missing', a ?? '', b ?? '') };
  }

  /**
   * See CLAIM_UPSTREAM_LUA: a lease of `leaseMs` (Redis time) on securing this generation's
   * original; claiming again as the same owner renews it. A claim that leads to an upstream call
   * (no URL or bytes checkpointed yet) counts one in the tenant's usage.
   */
  async claimUpstream(ref: GenerationRef, owner: string, leaseMs: number): Promise<UpstreamClaim> {
    const [outcome, a, b] = await this.redis.imagegenClaimUpstream(this.keys.generation(ref.id), this.keys.usage(ref.tenant), owner, leaseMs);
    return toClaim(outcome, a, b);
  }

  /**
   * Keeps paid-for bytes that could not be stored, so the next attempt resumes from them, unless
   * the spooled bytes of every generation would pass `budgetBytes` with them (see SPOOL_LUA):
   * says whether they are kept.
   */
  async spool(ref: GenerationRef, data: Buffer, ttlSeconds: number, budgetBytes: number): Promise<boolean> {
    const key = this.keys.spool(ref.id);
    if ((await this.redis.imagegenSpool(key, this.keys.spoolIndex(), data, ttlSeconds, budgetBytes)) !== 1) return false;
    // a generation that ended meanwhile does not take the bytes: they go at once
    if ((await this.transition(ref, { spoolKey: key, upstreamLease: null })) !== 'ok') {
      await this.dropSpool(ref.id);
      return false;
    }
    return true;
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

  /** KEYS and ARGV[1..6] of every script built on the transition (see transition.ts). */
  private transitionArgs(ref: GenerationRef, event: GenerationMessage['type'] | undefined, report: JobReport | undefined): (string | number)[] {
    const record = this.keys.generation(ref.id);
    const batch = ref.batchId ? [this.keys.batch(ref.batchId), this.keys.batchItems(ref.batchId), this.keys.batchExpiry()] : [record, record, record];
    const job = report ? [report.job.hash, report.job.events, report.job.meta, report.job.logs] : [record, record, record, record];
    const finished = ref.batchId ? this.keys.batchFinished(ref.batchId) : record;
    return [
      record,
      this.keys.fileExpiry(),
      this.keys.recordExpiry(),
      this.keys.spool(ref.id),
      ...this.keys.tenantStatusIndexes(ref.tenant),
      this.keys.webhookOutbox(),
      this.keys.usage(ref.tenant),
      ...batch,
      ...job,
      finished,
      this.keys.generationChannel(ref.id),
      event ?? '',
      this.retentionSeconds,
      FAILED_FILES_GRACE_SECONDS,
      ref.batchId ? this.keys.batchChannel(ref.batchId) : '',
      report?.line ?? '',
    ];
  }

  /** With `report`, the change also moves the job's progress and adds a line to its log, in the same step. */
  async transition(ref: GenerationRef, patch: RecordPatch, event?: GenerationMessage['type'], report?: JobReport): Promise<TransitionOutcome> {
    return this.redis.imagegenTransition(...this.transitionArgs(ref, event, report), ...encodeFields(patch));
  }

  markActive(ref: GenerationRef, attempts: number): Promise<TransitionOutcome> {
    return this.transition(
      ref,
      { status: 'active', stage: 'generating', progress: STAGE_PROGRESS.generating, attempts, '?startedAt': NOW },
      'generation.started',
    );
  }

  setStage(ref: GenerationRef, stage: Stage, report?: JobReport): Promise<TransitionOutcome> {
    return this.transition(ref, { stage, progress: STAGE_PROGRESS[stage] }, 'generation.progress', report);
  }

  /** Records a stage's result (and, with `stage`, enters the next stage in the same step); the lease ends with the stored original. */
  checkpoint(ref: GenerationRef, patch: { upstreamUrl?: string | null; original?: StoredImage; spoolKey?: null }, stage?: { stage: Stage; report?: JobReport }): Promise<TransitionOutcome> {
    const done = patch.original ? { ...patch, upstreamLease: null } : patch;
    if (!stage) return this.transition(ref, done);
    return this.transition(ref, { ...done, stage: stage.stage, progress: STAGE_PROGRESS[stage.stage] }, 'generation.progress', stage.report);
  }

  releaseUpstream(ref: GenerationRef): Promise<TransitionOutcome> {
    return this.transition(ref, { upstreamLease: null });
  }

  complete(ref: GenerationRef, result: StoredResult, report?: JobReport): Promise<TransitionOutcome> {
    return this.transition(
      ref,
      { status: 'completed', stage: 'done', progress: 100, result, error: null, upstreamUrl: null, completedAt: NOW },
      'generation.completed',
      report,
    );
  }

  fail(ref: GenerationRef, error: GenerationErrorInfo, report?: JobReport): Promise<TransitionOutcome> {
    return this.transition(ref, { status: 'failed', error, completedAt: NOW }, 'generation.failed', report);
  }

  /** A failed attempt that will be tried again: back to queued, the error kept for the curious. */
  retrying(ref: GenerationRef, error: GenerationErrorInfo, report?: JobReport): Promise<TransitionOutcome> {
    return this.transition(ref, { status: 'queued', error }, 'generation.retrying', report);
  }

  /** Back to the queue until the store answers: the bytes are safe, what is left is storing them. */
  waitingForStorage(ref: GenerationRef, error: GenerationErrorInfo, report?: JobReport): Promise<TransitionOutcome> {
    return this.transition(ref, { status: 'queued', stage: 'storing', error }, 'generation.retrying', report);
  }

  cancel(ref: GenerationRef): Promise<TransitionOutcome> {
    return this.transition(ref, CANCELLED, 'generation.cancelled');
  }

  /**
   * Cancels the items `ids` of one batch that are not terminal yet, CANCELS_PER_SCRIPT to a script
   * (see CANCEL_ITEMS_LUA: a few milliseconds of Redis time each); a running item's worker is told
   * at once. Returns how many it cancelled.
   */
  async cancelBatchItems(batch: { id: string; tenant: string }, ids: string[]): Promise<number> {
    let cancelled = 0;
    for (let i = 0; i < ids.length; i += CANCELS_PER_SCRIPT) cancelled += await this.cancelBatchItemsAtOnce(batch, ids.slice(i, i + CANCELS_PER_SCRIPT));
    return cancelled;
  }

  private async cancelBatchItemsAtOnce(batch: { id: string; tenant: string }, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const shared = this.transitionArgs({ id: ids[0] as string, tenant: batch.tenant, batchId: batch.id }, 'generation.cancelled', undefined);
    const keys = shared.slice(0, TRANSITION_KEY_COUNT);
    const [, ...args] = shared.slice(TRANSITION_KEY_COUNT);
    for (const id of ids) keys.push(this.keys.generation(id), this.keys.spool(id));
    return this.redis.imagegenCancelItems(
      keys.length,
      ...keys,
      '',
      ...args,
      this.keys.cancelChannel(),
      ids.length,
      ...ids.map((id) => this.keys.generationChannel(id)),
      ...encodeFields(CANCELLED),
    );
  }

  /**
   * Newest first; the cursor is the last id of the previous page (ids sort by creation).
   * With a status the page comes from that status's index: either way a page costs one
   * range read and one pipelined read of its records (see pageFromIndex for entries whose
   * records are gone).
   */
  list(tenant: string, opts: ListOptions): Promise<{ records: GenerationRecord[]; nextCursor: string | null }> {
    return pageFromIndex(this.redis, this.keys.tenantGenerations(tenant, opts.status), opts, async (ids) => {
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hgetall(this.keys.generation(id));
      const hashes = (await pipeline.exec()) ?? [];
      return ids.map((_, i) => {
        const record = decodeRecord((hashes[i]?.[1] ?? {}) as Record<string, string>);
        return record && (!opts.status || record.status === opts.status) ? record : null;
      });
    });
  }
}

/** A hash from HGETALL's flat list of fields and values (as a script returns it). */
export function hashOf(flat: string[]): Record<string, string> {
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
  return hash;
}

function toClaim(outcome: string, a: string, b: string): UpstreamClaim {
  if (outcome === 'busy') return { outcome, retryInMs: Number(a) };
  if (outcome === 'ok') return { outcome, ...(a ? { upstreamUrl: a } : {}), ...(b ? { spoolKey: b } : {}) };
  return { outcome: outcome as 'terminal' | 'checkpointed' | 'missing' };
}
