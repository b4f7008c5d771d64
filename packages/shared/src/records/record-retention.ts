import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { redisTimeMs } from '../redis-clock';
import { STATUSES, type GenerationStatus } from '../schemas/generation';
import type { GenerationRef } from './generation-store';
import { forgetTenantsWithoutRecords } from './tenant-index';
import { SPOOL_PRUNE_LUA } from './lua/spool';

/** Index entries of each tenant's queued, and active, generations one orphan sweep reads at most. */
export const ORPHAN_SCAN_BUDGET = 10_000;
/** The sweep's resume points are forgotten this long after its last run (it runs every few minutes). */
const ORPHAN_CURSOR_TTL_MS = 86_400_000;

/** An unfinished record that nothing will finish, and why (see findOrphans). */
export type Orphan =
  /** Its job is gone (removed by hand, or trimmed): it fails as job_lost. */
  | { kind: 'lost'; ref: GenerationRef }
  /** Its job ended and the record never heard (the process ending it died): it fails with the job's reason. */
  | { kind: 'ended'; ref: GenerationRef; reason: string }
  /** An item of a batch whose writing stopped part-way (it was never confirmed, and has expired): removed without a trace. */
  | { kind: 'unwritten'; ref: GenerationRef }
  /** An item of a cancelled batch that its cancel did not reach (it stopped part-way): cancelled, as the batch's cancel would have. */
  | { kind: 'uncancelled'; ref: GenerationRef };

/**
 * The owner of everything a finished generation leaves in Redis and storage. The record
 * transition schedules each finished record (and its files) when it ends; the retention
 * sweep removes what is due: the record, its index entries, its spooled bytes, its webhook
 * deliveries log, and files.
 */
export class RecordRetention {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Redis's clock in ms: retention is judged by one clock whatever host sweeps. */
  async now(): Promise<number> {
    return redisTimeMs(this.redis);
  }

  /**
   * Removes up to `limit` records whose retention has ended, with everything they own. An item
   * that ended while its batch ran has no expiry of its own (see transition.ts): it is kept until
   * its batch's retention (`retentionSeconds` after the batch completed) ends too, its due time
   * and its completed image's moved on together (records are swept before files). Returns how
   * many were due (`seen`) and how many went.
   */
  async removeDueRecords(now: number, limit: number, retentionSeconds: number): Promise<{ seen: number; removed: number }> {
    const due = await this.redis.zrangebyscore(this.keys.recordExpiry(), '-inf', now, 'LIMIT', 0, limit);
    if (due.length === 0) return { seen: 0, removed: 0 };
    const later = await this.heldByBatches(due, now, retentionSeconds);
    const pipeline = this.redis.pipeline();
    const tenants = new Set<string>();
    const gone: string[] = [];
    for (const member of due) {
      const kept = later.get(member);
      if (kept) {
        pipeline.zadd(this.keys.recordExpiry(), kept.until, member);
        if (kept.fileToken) pipeline.zadd(this.keys.fileExpiry(), kept.until, kept.fileToken);
        continue;
      }
      const sep = member.indexOf('|');
      const id = member.slice(0, sep);
      const tenant = member.slice(sep + 1);
      tenants.add(tenant);
      gone.push(member);
      pipeline.del(this.keys.generation(id), this.keys.spool(id), this.keys.generationDeliveries(id));
      pipeline.zrem(this.keys.tenantGenerations(tenant), id);
      for (const status of STATUSES) pipeline.zrem(this.keys.tenantGenerations(tenant, status), id);
    }
    if (gone.length) pipeline.zrem(this.keys.recordExpiry(), ...gone);
    await pipeline.exec();
    await forgetTenantsWithoutRecords(this.redis, this.keys, tenants);
    return { seen: due.length, removed: gone.length };
  }

  /**
   * Of due members, the batch items without an expiry of their own still to keep: until when
   * (their batch still runs: another retention; it completed: its retention from then), with
   * the file token of a completed one's image, which is kept as long.
   */
  private async heldByBatches(due: string[], now: number, retentionSeconds: number): Promise<Map<string, { until: number; fileToken?: string }>> {
    const reads = this.redis.pipeline();
    for (const member of due) {
      const key = this.keys.generation(member.slice(0, member.indexOf('|')));
      reads.pttl(key).hmget(key, 'batchId', 'status', 'fileToken');
    }
    const replies = (await reads.exec()) ?? [];
    const held = new Map<string, { batchId: string; completed: boolean; fileToken: string | null }>();
    due.forEach((member, i) => {
      const [batchId, status, fileToken] = (replies[2 * i + 1]?.[1] ?? []) as (string | null)[];
      if (replies[2 * i]?.[1] === -1 && batchId) held.set(member, { batchId, completed: status === 'completed', fileToken: fileToken ?? null });
    });
    const out = new Map<string, { until: number; fileToken?: string }>();
    if (held.size === 0) return out;
    const batchIds = [...new Set([...held.values()].map((h) => h.batchId))];
    const batchReads = this.redis.pipeline();
    for (const b of batchIds) batchReads.hmget(this.keys.batch(b), 'status', 'completedAt');
    const batches = new Map(((await batchReads.exec()) ?? []).map((r, i) => [batchIds[i] as string, (r[1] ?? []) as (string | null)[]]));
    for (const [member, h] of held) {
      const [status, completedAt] = batches.get(h.batchId) ?? [];
      const ends = status === 'completed' && completedAt ? Date.parse(completedAt) + retentionSeconds * 1000 : status ? now + retentionSeconds * 1000 : now;
      if (ends > now) out.set(member, h.completed && h.fileToken ? { until: ends, fileToken: h.fileToken } : { until: ends });
    }
    return out;
  }

  /** Removes up to `limit` finished batches whose retention has ended (record, item list, index entry, deliveries log); returns how many. */
  async removeDueBatches(now: number, limit: number): Promise<number> {
    const due = await this.redis.zrangebyscore(this.keys.batchExpiry(), '-inf', now, 'LIMIT', 0, limit);
    if (due.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const member of due) {
      const sep = member.indexOf('|');
      const id = member.slice(0, sep);
      pipeline.del(this.keys.batch(id), this.keys.batchItems(id), this.keys.batchFinished(id), this.keys.batchDeliveries(id));
      pipeline.zrem(this.keys.tenantBatches(member.slice(sep + 1)), id);
    }
    pipeline.zrem(this.keys.batchExpiry(), ...due);
    await pipeline.exec();
    return due.length;
  }

  /**
   * Drops usage counters of days before the last `days` (UTC days of `now`) from every tenant
   * with records; a tenant without records keeps its hash until it expires (see usage.ts).
   * Returns how many fields went.
   */
  async trimUsage(now: number, days: number): Promise<number> {
    const cutoff = new Date((Math.floor(now / 86_400_000) - days + 1) * 86_400_000).toISOString().slice(0, 10);
    let removed = 0;
    for (const tenant of await this.redis.smembers(this.keys.tenants())) {
      const key = this.keys.usage(tenant);
      const old = (await this.redis.hkeys(key)).filter((f) => f.slice(0, 10) < cutoff);
      if (old.length) removed += await this.redis.hdel(key, ...old);
    }
    return removed;
  }

  /** Drops the spool index's entries of spools gone (see SPOOL_PRUNE_LUA). */
  async pruneSpoolIndex(): Promise<void> {
    await this.redis.eval(SPOOL_PRUNE_LUA, 1, this.keys.spoolIndex());
  }

  /** File tokens whose files are due for removal, oldest first. */
  dueFileTokens(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.fileExpiry(), '-inf', now, 'LIMIT', 0, limit);
  }

  async forgetFileTokens(tokens: string[]): Promise<void> {
    if (tokens.length) await this.redis.zrem(this.keys.fileExpiry(), ...tokens);
  }

  /**
   * Unfinished generations created before `createdBefore` (an id: ids sort by creation) that
   * are not provisional (a provisional record's job may still be on its way, and it expires by
   * itself otherwise) and that nothing will finish: their job is gone (removed by hand or
   * trimmed), or it ended without the record hearing of it (a job failed for stalling too often
   * is ended by a listener, after BullMQ's own step: a process that dies in between leaves the
   * record active until the job is trimmed, days later). A batch item has a job only once the
   * feeder released it: one not released yet is no orphan, unless its batch was cancelled (a
   * cancel that failed part-way) or is gone, never confirmed: its writer stopped part-way and
   * could not clean up, and the item, never accepted, is removed rather than failed (a failure
   * would send a webhook and show in listings for a batch the client was told was refused). A
   * batch still being written, or not yet expired, keeps its items.
   *
   * Each call reads no more than `budget` entries of each tenant's queued and active indexes,
   * starting where the previous call stopped (keys.orphanSweepCursor): a backlog of any size
   * costs each sweep the same, and is covered over several sweeps.
   */
  async findOrphans(createdBefore: string, jobKey: (id: string) => string, opts: { page?: number; budget?: number } = {}): Promise<Orphan[]> {
    const page = opts.page ?? 1000;
    const budget = opts.budget ?? ORPHAN_SCAN_BUDGET;
    const orphans: Orphan[] = [];
    const unfinished: GenerationStatus[] = ['queued', 'active'];
    const cursorKey = this.keys.orphanSweepCursor();
    for (const tenant of await this.redis.smembers(this.keys.tenants())) {
      for (const status of unfinished) {
        const index = this.keys.tenantGenerations(tenant, status);
        const field = `${tenant}|${status}`;
        const resumeAt = await this.redis.hget(cursorKey, field);
        let after = resumeAt ? `(${resumeAt}` : '-';
        let scanned = 0;
        let last: string | null = null;
        let ended = false;
        for (let want = Math.min(page, budget); want > 0; want = Math.min(page, budget - scanned)) {
          const ids = await this.redis.zrangebylex(index, after, `(${createdBefore}`, 'LIMIT', 0, want);
          scanned += ids.length;
          if (ids.length) {
            orphans.push(...(await this.orphansAmong(tenant, ids, jobKey)));
            last = ids[ids.length - 1] as string;
            after = `(${last}`;
          }
          if (ids.length < want) {
            ended = true;
            break;
          }
        }
        // an index read to its end is read from its start next time; else the next sweep goes on from here
        if (ended) {
          if (resumeAt) await this.redis.hdel(cursorKey, field);
        } else if (last !== null) {
          await this.redis.multi().hset(cursorKey, field, last).pexpire(cursorKey, ORPHAN_CURSOR_TTL_MS).exec();
        }
      }
    }
    return orphans;
  }

  /** Which of one page of a tenant's unfinished ids are orphans (see findOrphans). */
  private async orphansAmong(tenant: string, ids: string[], jobKey: (id: string) => string): Promise<Orphan[]> {
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.exists(jobKey(id)).hmget(jobKey(id), 'finishedOn', 'failedReason').pttl(this.keys.generation(id)).hmget(this.keys.generation(id), 'batchId', 'batchIndex');
    const replies = (await pipeline.exec()) ?? [];
    const orphans: Orphan[] = [];
    const candidates: { ref: GenerationRef; index: number }[] = [];
    ids.forEach((id, i) => {
      const jobExists = replies[4 * i]?.[1] === 1;
      const [finishedOn, failedReason] = (replies[4 * i + 1]?.[1] ?? []) as (string | null)[];
      const ttl = replies[4 * i + 2]?.[1];
      const [batchId, batchIndex] = (replies[4 * i + 3]?.[1] ?? []) as (string | null)[];
      if (ttl !== -1) return;
      const ref = batchId ? { id, tenant, batchId } : { id, tenant };
      if (!jobExists) candidates.push({ ref, index: Number(batchIndex ?? 0) });
      else if (finishedOn) orphans.push({ kind: 'ended', ref, reason: failedReason || 'The job of this generation ended without its outcome being recorded' });
    });
    const batched = candidates.filter((c) => c.ref.batchId);
    // per batch: how far it has released its items, 'cancelled' when it will release no more, 'unwritten' when gone unconfirmed, 'writing' while unconfirmed
    const released = new Map<string, number | 'cancelled' | 'unwritten' | 'writing'>();
    if (batched.length) {
      const reads = this.redis.pipeline();
      const batchIds = [...new Set(batched.map((c) => c.ref.batchId as string))];
      for (const b of batchIds) reads.hmget(this.keys.batch(b), 'id', 'confirmed', 'released', 'cancelledAt');
      const answers = (await reads.exec()) ?? [];
      batchIds.forEach((b, i) => {
        const [exists, confirmed, upTo, cancelledAt] = (answers[i]?.[1] ?? []) as (string | null)[];
        // (a confirmed batch is removed only once every item ended: one gone with items unfinished never was confirmed)
        if (!exists) released.set(b, 'unwritten');
        // a cancelled batch releases nothing more: an item its cancel did not reach is cancelled
        // here (the feeder finishes such a cancel first, as a rule; this covers one it dropped)
        else if (cancelledAt) released.set(b, 'cancelled');
        else if (confirmed !== '1') released.set(b, 'writing');
        else released.set(b, upTo == null ? 0 : Number(upTo));
      });
    }
    const releasedItems: GenerationRef[] = [];
    for (const c of candidates) {
      const upTo = c.ref.batchId ? released.get(c.ref.batchId) : 'lost';
      if (upTo === 'lost') orphans.push({ kind: 'lost', ref: c.ref });
      else if (upTo === 'cancelled') orphans.push({ kind: 'uncancelled', ref: c.ref });
      else if (upTo === 'unwritten') orphans.push({ kind: 'unwritten', ref: c.ref });
      else if (typeof upTo === 'number' && c.index < upTo) releasedItems.push(c.ref);
    }
    if (releasedItems.length === 0) return orphans;
    // the feeder adds an item's job before it moves the cursor past it: one released between the
    // job read above and the cursor read has its job by now, so it is looked for again
    const again = this.redis.pipeline();
    for (const ref of releasedItems) again.exists(jobKey(ref.id));
    const found = (await again.exec()) ?? [];
    releasedItems.forEach((ref, i) => {
      if (found[i]?.[1] !== 1) orphans.push({ kind: 'lost', ref });
    });
    return orphans;
  }

  /**
   * Removes records that were never accepted (items of a batch whose writing stopped part-way),
   * with their index entries, as that batch's writer would have: no outcome, no webhook.
   */
  async removeUnwritten(refs: GenerationRef[]): Promise<void> {
    if (refs.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const { id, tenant } of refs) {
      pipeline.del(this.keys.generation(id), this.keys.spool(id), this.keys.generationDeliveries(id));
      pipeline.zrem(this.keys.tenantGenerations(tenant), id);
      for (const status of STATUSES) pipeline.zrem(this.keys.tenantGenerations(tenant, status), id);
    }
    await pipeline.exec();
    await forgetTenantsWithoutRecords(this.redis, this.keys, refs.map((r) => r.tenant));
  }
}
