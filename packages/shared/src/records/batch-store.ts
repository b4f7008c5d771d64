import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { batchRecordSchema, finishedItemSchema, type BatchRecord, type FinishedItem } from '../schemas/batch';
import { decodeRecord, encodeFields, hashCodec } from './codec';
import type { GenerationRecord } from '../schemas/generation';
import { hashOf, type IdempotencyClaim, type QuotaShrink } from './generation-store';
import { BATCH_ADD_ITEMS_LUA, BATCH_BEGIN_LUA, BATCH_CANCEL_LUA, BATCH_CANCEL_PROGRESS_LUA, BATCH_CONFIRM_LUA, BATCH_FREE_CLAIM_LUA, BATCH_REMOVE_UNACCEPTED_LUA } from './lua/batch-create';
import { NOW } from './lua/pieces';
import { pageFromIndex } from './index-page';
import { forgetTenantsWithoutRecords } from './tenant-index';

export const batchCodec = hashCodec(batchRecordSchema);
const finishedItemCodec = hashCodec(finishedItemSchema);

/** What a new item record holds besides what all items of its batch share. */
export interface NewBatchItem {
  id: string;
  fileToken: string;
  request: GenerationRecord['request'];
  metadata: GenerationRecord['metadata'];
  index: number;
}

/** A batch's entry in the feeding and writing lists: `tenant|batchId` (BATCH_CONFIRM_LUA writes it too). */
export function batchListEntry(batch: Pick<BatchRecord, 'id' | 'tenant'>): string {
  return `${batch.tenant}|${batch.id}`;
}

/** The batch a feeding or writing list's entry names. */
export function parseBatchListEntry(member: string): { member: string; tenant: string; batchId: string } {
  const sep = member.lastIndexOf('|');
  return { member, tenant: member.slice(0, sep), batchId: member.slice(sep + 1) };
}

/** Ids of a batch gone unconfirmed whose records one script removes. */
const UNACCEPTED_PAGE = 500;

type BatchRedis = Redis & {
  imagegenBatchBegin(...args: (string | number)[]): Promise<[string, string]>;
  imagegenBatchAddItems(...args: (string | number)[]): Promise<number>;
  imagegenBatchConfirm(...args: (string | number)[]): Promise<number>;
  imagegenBatchCancel(batch: string, feeding: string, at: string, entry: string): Promise<number>;
  imagegenBatchFreeClaim(batch: string, idempotency: string, value: string): Promise<number>;
  imagegenBatchCancelProgress(batch: string, feeding: string, reached: number, entry: string, done: '1' | '0', noted: '1' | '0'): Promise<number>;
  imagegenBatchRemoveUnaccepted(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
};

export type BatchBeginOutcome = { outcome: 'created'; createdAt: string } | { outcome: 'held'; value: string };

/**
 * Batch records: one hash per batch (counts kept by the record transition), its item ids in a
 * list in submission order, and the tenant's index of batches.
 */
export class BatchStore {
  private readonly redis: BatchRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    if (!('imagegenBatchBegin' in redis)) {
      redis.defineCommand('imagegenBatchBegin', { numberOfKeys: 3, lua: BATCH_BEGIN_LUA });
      redis.defineCommand('imagegenBatchAddItems', { lua: BATCH_ADD_ITEMS_LUA });
      redis.defineCommand('imagegenBatchConfirm', { numberOfKeys: 7, lua: BATCH_CONFIRM_LUA });
      redis.defineCommand('imagegenBatchCancel', { numberOfKeys: 2, lua: BATCH_CANCEL_LUA });
      redis.defineCommand('imagegenBatchFreeClaim', { numberOfKeys: 2, lua: BATCH_FREE_CLAIM_LUA });
      redis.defineCommand('imagegenBatchCancelProgress', { numberOfKeys: 2, lua: BATCH_CANCEL_PROGRESS_LUA });
      redis.defineCommand('imagegenBatchRemoveUnaccepted', { lua: BATCH_REMOVE_UNACCEPTED_LUA });
    }
    this.redis = redis as BatchRedis;
  }

  /** Writes the provisional batch record, living `provisionalSeconds` unless written to again (and claims the idempotency key with it, for the claim's own time). */
  async begin(record: Omit<BatchRecord, 'createdAt'>, provisionalSeconds: number, idempotency?: IdempotencyClaim): Promise<BatchBeginOutcome> {
    const key = this.keys.batch(record.id);
    const [outcome, detail] = await this.redis.imagegenBatchBegin(
      key,
      idempotency?.key ?? key,
      this.keys.batchesWriting(),
      provisionalSeconds,
      idempotency?.value ?? '',
      idempotency?.ttlSeconds ?? provisionalSeconds,
      batchListEntry(record),
      ...batchCodec.encode({ ...record, createdAt: NOW }),
    );
    return outcome === 'held' ? { outcome, value: detail } : { outcome: 'created', createdAt: detail };
  }

  /**
   * Writes a chunk of items in one script, renewing the batch's `provisionalSeconds` (its list
   * lives `listSeconds`) and shrinking the request's quota reservation by the chunk; false when
   * the batch is gone.
   */
  async addItems(batch: Pick<BatchRecord, 'id' | 'tenant' | 'webhook'>, items: NewBatchItem[], provisionalSeconds: number, listSeconds = provisionalSeconds, reservation?: QuotaShrink): Promise<boolean> {
    const common = encodeFields({
      tenant: batch.tenant,
      status: 'queued',
      stage: 'queued',
      progress: 0,
      priority: 'low',
      batchId: batch.id,
      attempts: 0,
      ...(batch.webhook ? { webhook: batch.webhook } : {}),
    });
    const keys = [
      this.keys.batch(batch.id),
      this.keys.batchItems(batch.id),
      this.keys.tenantGenerations(batch.tenant),
      this.keys.tenantGenerations(batch.tenant, 'queued'),
      this.keys.tenants(),
      this.keys.batchFinished(batch.id),
      reservation?.key ?? this.keys.batch(batch.id),
    ];
    const args: (string | number)[] = [batch.tenant, provisionalSeconds, listSeconds, JSON.stringify(common), reservation?.entry ?? '', reservation?.rest ?? ''];
    for (const item of items) {
      keys.push(this.keys.generation(item.id));
      args.push(item.id, item.fileToken, JSON.stringify(item.request), JSON.stringify(item.metadata), item.index);
    }
    const written = await this.redis.imagegenBatchAddItems(keys.length, ...keys, ...args);
    if (written === -2) throw new Error('the batch item list does not end where this chunk starts');
    return written >= 0;
  }

  /** Every item is written: the batch keeps, is listed and is fed to the workers. */
  async confirm(batch: Pick<BatchRecord, 'id' | 'tenant'>, idempotency?: IdempotencyClaim): Promise<boolean> {
    const key = this.keys.batch(batch.id);
    return (
      (await this.redis.imagegenBatchConfirm(
        key,
        this.keys.batchItems(batch.id),
        this.keys.tenantBatches(batch.tenant),
        this.keys.batchesFeeding(),
        idempotency?.key ?? key,
        this.keys.batchFinished(batch.id),
        this.keys.batchesWriting(),
        batch.id,
        batch.tenant,
        idempotency?.value ?? '',
        idempotency?.ttlSeconds ?? 0,
        batchListEntry(batch),
      )) === 1
    );
  }

  /**
   * Removes what a batch that could not be accepted wrote (its items were never fed). A batch
   * confirmed after all (its confirm ran, and only the reply was lost) is being fed: it is kept.
   */
  async abandon(batch: Pick<BatchRecord, 'id' | 'tenant'>, idempotency?: IdempotencyClaim): Promise<void> {
    if ((await this.redis.hget(this.keys.batch(batch.id), 'confirmed')) === '1') return;
    for (let start = 0; ; start += 1000) {
      const ids = await this.itemIds(batch.id, start, 1000);
      if (ids.length === 0) break;
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.del(this.keys.generation(id));
      pipeline.zrem(this.keys.tenantGenerations(batch.tenant), ...ids).zrem(this.keys.tenantGenerations(batch.tenant, 'queued'), ...ids);
      await pipeline.exec();
    }
    await this.redis.multi().del(this.keys.batch(batch.id), this.keys.batchItems(batch.id), this.keys.batchFinished(batch.id)).zrem(this.keys.batchesWriting(), batchListEntry(batch)).exec();
    await forgetTenantsWithoutRecords(this.redis, this.keys, [batch.tenant]);
    if (idempotency) await this.freeClaimIfGone(batch.id, idempotency);
  }

  /**
   * Removes what a batch gone without being confirmed (its writer died, and its lease ran out)
   * wrote, read off its item list, which outlives it: up to `max` ids a call, taken off the list
   * as they go (BATCH_REMOVE_UNACCEPTED_LUA, a page a script). `done` once nothing is left.
   */
  async removeUnaccepted(batch: Pick<BatchRecord, 'id' | 'tenant'>, max: number): Promise<{ scanned: number; done: boolean }> {
    const list = this.keys.batchItems(batch.id);
    let scanned = 0;
    while (scanned < max) {
      const ids = await this.redis.lrange(list, 0, Math.min(UNACCEPTED_PAGE, max - scanned) - 1);
      if (ids.length === 0) break;
      await this.redis.imagegenBatchRemoveUnaccepted(
        3 + ids.length,
        list,
        this.keys.tenantGenerations(batch.tenant),
        this.keys.tenantGenerations(batch.tenant, 'queued'),
        ...ids.map((id) => this.keys.generation(id)),
        batch.id,
        ...ids,
      );
      scanned += ids.length;
    }
    const done = (await this.redis.exists(list)) === 0;
    if (done) await forgetTenantsWithoutRecords(this.redis, this.keys, [batch.tenant]);
    return { scanned, done };
  }

  /**
   * Whether batch `id` is gone; if so, its idempotency key is freed, should it still hold the
   * batch's claim (a key outlives its batch when the retention is shorter than the key's day).
   */
  async freeClaimIfGone(id: string, claim: Pick<IdempotencyClaim, 'key' | 'value'>): Promise<boolean> {
    return (await this.redis.imagegenBatchFreeClaim(this.keys.batch(id), claim.key, claim.value)) === 1;
  }

  /** Whether batch `id` is being written: begun, not yet confirmed (nor given up). */
  async isBeingWritten(id: string): Promise<boolean> {
    const [exists, confirmed] = await this.redis.hmget(this.keys.batch(id), 'id', 'confirmed');
    return exists !== null && confirmed !== '1';
  }

  async get(id: string): Promise<BatchRecord | null> {
    const hash = await this.redis.hgetall(this.keys.batch(id));
    return hash.confirmed === '1' ? batchCodec.decode(hash) : null;
  }

  /** A tenant's own batch, or null: another tenant's id reads exactly like an unknown one. */
  async getForTenant(id: string, tenant: string): Promise<BatchRecord | null> {
    const record = await this.get(id);
    return record && record.tenant === tenant ? record : null;
  }

  /**
   * Items that ended after the entry `after` of the batch's finished-items stream ('0-0': from
   * the first), oldest first, at most `count`, each with its entry id (where to go on from).
   */
  async finishedAfter(id: string, after: string, count: number): Promise<{ entry: string; item: FinishedItem }[]> {
    const entries = await this.redis.xrange(this.keys.batchFinished(id), `(${after}`, '+', 'COUNT', count);
    return entries.map(([entry, flat]) => ({ entry, item: finishedItemCodec.decode(hashOf(flat)) as FinishedItem }));
  }

  /** The last entry of the batch's finished-items stream ('0-0' while none ended): what ends after it is still to come. */
  async finishedEnd(id: string): Promise<string> {
    const [last] = await this.redis.xrevrange(this.keys.batchFinished(id), '+', '-', 'COUNT', 1);
    return last?.[0] ?? '0-0';
  }

  /** Item ids from `start` (the item index), at most `count`. */
  itemIds(id: string, start: number, count: number): Promise<string[]> {
    return this.redis.lrange(this.keys.batchItems(id), start, start + count - 1);
  }

  /** Records of `ids` in one pipelined read; null where a record is gone. */
  async items(ids: string[]): Promise<(GenerationRecord | null)[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.generation(id));
    const replies = (await pipeline.exec()) ?? [];
    return ids.map((_, i) => decodeRecord((replies[i]?.[1] ?? {}) as Record<string, string>));
  }

  /** Marks the batch cancelled: nothing more of it is fed, and the feeder watches over its cancel (see BATCH_CANCEL_LUA); true the first time. */
  async markCancelled(batch: Pick<BatchRecord, 'id' | 'tenant'>, at: string): Promise<boolean> {
    return (await this.redis.imagegenBatchCancel(this.keys.batch(batch.id), this.keys.batchesFeeding(), at, batchListEntry(batch))) === 1;
  }

  /**
   * Notes that the cancel of a cancelled batch's items has reached index `reached`, whether it is
   * done, and (`byRequest`, the request cancelling) when: the feeder takes over a cancel not
   * noted for a while (BATCH_CANCEL_PROGRESS_LUA).
   */
  async noteCancelProgress(batch: Pick<BatchRecord, 'id' | 'tenant'>, reached: number, done: boolean, byRequest = true): Promise<void> {
    await this.redis.imagegenBatchCancelProgress(this.keys.batch(batch.id), this.keys.batchesFeeding(), reached, batchListEntry(batch), done ? '1' : '0', byRequest ? '1' : '0');
  }

  /** Newest first; the cursor is the last id of the previous page. One range read and one pipelined read per page. */
  list(tenant: string, opts: { limit: number; cursor?: string }): Promise<{ records: BatchRecord[]; nextCursor: string | null }> {
    return pageFromIndex(this.redis, this.keys.tenantBatches(tenant), opts, async (ids) => {
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hgetall(this.keys.batch(id));
      const hashes = (await pipeline.exec()) ?? [];
      return ids.map((_, i) => batchCodec.decode((hashes[i]?.[1] ?? {}) as Record<string, string>));
    });
  }
}
