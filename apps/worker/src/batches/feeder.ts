import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BATCH_ADVANCE_LUA, batchItemJobOptions, redisNotServing, generateJobName, parseBatchListEntry, redisTimeMs, type GenerateJobInput, type GenerateJobPolicy, type Keys, type Logger } from '@imagegen/shared';
import { interleave, shareWindow, type FeedState } from './fair-share';
import { nextRefusalWaitMs } from '../write-refusals';

/** Takes the lock when free, renews it when ours: one feeder runs at a time across every worker. */
const LOCK_LUA = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`;

type FeederRedis = Redis & {
  imagegenFeederLock(key: string, owner: string, ms: number): Promise<number>;
  imagegenFeederAdvance(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
};

export interface FeederOptions {
  /** Batch items released and not finished, across every batch, at most. */
  window: number;
  intervalMs: number;
  owner: string;
  policy: GenerateJobPolicy;
  /** Cancels the items of a cancelled batch, and notes how far that has gone (see finishCancels). */
  cancels: {
    items(batch: { id: string; tenant: string }, ids: string[]): Promise<unknown>;
    progress(batch: { id: string; tenant: string }, reached: number, done: boolean): Promise<void>;
  };
  /** A cancel noted neither done nor lately (by the request making it) for this long has stopped part-way, and is finished here. */
  cancelStalledMs?: number;
  /** Removes up to `max` items that a batch gone unconfirmed wrote (BatchStore.removeUnaccepted). */
  removeUnaccepted(batch: { id: string; tenant: string }, max: number): Promise<{ scanned: number; done: boolean }>;
}

/** Items a round looks at to finish cancels and remove what dead writers left, at most: a round stays short of the lock's time. */
const TIDY_PER_ROUND = 2000;
/** Batches being written a round looks at, at most. */
const WRITING_PER_ROUND = 100;

/** Items a round counts for a cursor moved on without counting, per batch. */
const CATCH_UP_MAX = 1000;

/** A batch being fed, as one round reads it. */
interface FeedRead {
  member: string;
  tenant: string;
  batchId: string;
  gone: boolean;
  /** When the cancel began (ISO), when its request last noted progress (ms), and how far it has gone. */
  cancelledAt: string | null;
  cancelNotedAt: number;
  cancelledTo: number;
  cancelsDone: boolean;
  total: number;
  released: number;
  /** Released items that have ended (see releasedDoneOf). */
  releasedDone: number;
  /** Where the batch's own count stands (absent: the batch keeps none). */
  countedTo?: number;
}

/**
 * How many of a batch's released items have ended. The batch counts them (`counted`) as they
 * end and as they are released; a batch made before it did goes by every ended item, which
 * counts those cancelled before their release too (its window can then take that many more).
 * The count never goes below what the batch's own counts prove: only a cancel ends an item
 * before its release, so every completed or failed item and every cancel beyond the items not
 * yet released are released ones. A count kept short (a process of an earlier version ending
 * items during an upgrade) thus holds places only for cancels, never for a whole window.
 */
export function releasedDoneOf(total: number, released: number, completed: number, failed: number, cancelled: number, counted: number | undefined): number {
  const everyEnded = completed + failed + cancelled;
  if (counted === undefined) return everyEnded;
  return Math.max(counted, everyEnded - Math.min(cancelled, total - released));
}

/**
 * Feeds batch items into the generate queue a bounded window at a time, shared fairly: per
 * tenant first, then per batch within a tenant (see fair-share.ts), refilled as items finish.
 * Items are released in submission order by a per-batch cursor that moves only after their
 * jobs were added; the job id is the generation id, so a feeder dying in between makes the
 * next one add the same jobs again, which changes nothing.
 */
export class BatchFeeder {
  private readonly redis: FeederRedis;
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  /** Rounds made: where the tie order starts. */
  private round = 0;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly queue: Queue,
    private readonly logger: Logger,
    private readonly opts: FeederOptions,
  ) {
    if (!('imagegenFeederLock' in redis)) {
      redis.defineCommand('imagegenFeederLock', { numberOfKeys: 1, lua: LOCK_LUA });
      redis.defineCommand('imagegenFeederAdvance', { lua: BATCH_ADVANCE_LUA });
    }
    this.redis = redis as FeederRedis;
  }

  start(): void {
    this.loop = (async () => {
      // while Redis refuses writes, ticks are spaced out (doubling up to the longest wait) rather than failing every interval
      let refusedWaitMs = 0;
      while (!this.stopped) {
        try {
          const lockMs = Math.max(5000, this.opts.intervalMs * 20);
          if ((await this.redis.imagegenFeederLock(this.keys.batchFeederLock(), this.opts.owner, lockMs)) === 1) await this.tick();
          refusedWaitMs = 0;
        } catch (err) {
          refusedWaitMs = redisNotServing(err) === undefined ? 0 : nextRefusalWaitMs(refusedWaitMs);
          this.logger.warn('batch feeder tick failed', { error: (err as Error).message, ...(refusedWaitMs ? { retryInMs: refusedWaitMs } : {}) });
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, refusedWaitMs || this.opts.intervalMs).unref();
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    // let another worker take over at once
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.keys.batchFeederLock(), this.opts.owner).catch(() => undefined);
  }

  /** Each batch's cursor and counts, in one pipelined read. */
  private async read(refs: { member: string; tenant: string; batchId: string }[]): Promise<FeedRead[]> {
    const read = this.redis.pipeline();
    for (const r of refs) read.hmget(this.keys.batch(r.batchId), 'total', 'released', 'completed', 'failed', 'cancelled', 'cancelledAt', 'releasedDone', 'countedTo', 'cancelledTo', 'cancelsDone', 'cancelNotedAt');
    const replies = (await read.exec()) ?? [];
    return refs.map((r, i) => {
      const [total, released, completed, failed, cancelled, cancelledAt, releasedDone, countedTo, cancelledTo, cancelsDone, cancelNotedAt] = (replies[i]?.[1] ?? []) as (string | null)[];
      const n = { total: Number(total), released: Number(released), completed: Number(completed), failed: Number(failed), cancelled: Number(cancelled) };
      return {
        ...r,
        gone: total == null,
        cancelledAt: cancelledAt ?? null,
        cancelNotedAt: Number(cancelNotedAt ?? 0),
        cancelledTo: Number(cancelledTo ?? 0),
        cancelsDone: cancelsDone === '1',
        total: n.total,
        released: n.released,
        releasedDone: releasedDoneOf(n.total, n.released, n.completed, n.failed, n.cancelled, releasedDone == null ? undefined : Number(releasedDone)),
        ...(releasedDone != null ? { countedTo: countedTo == null ? n.released : Number(countedTo) } : {}),
      };
    });
  }

  /** Counts the ended items a cursor passed without counting them (at most CATCH_UP_MAX per batch and round). */
  private async countUpTo(behind: FeedRead[]): Promise<void> {
    const spans = behind.map((b) => ({ batchId: b.batchId, from: b.countedTo as number, to: Math.min(b.released, (b.countedTo as number) + CATCH_UP_MAX) }));
    const ranges = this.redis.pipeline();
    for (const { batchId, from, to } of spans) ranges.lrange(this.keys.batchItems(batchId), String(from), String(to - 1));
    const idLists = (await ranges.exec()) ?? [];
    await this.advance(spans.map((span, i) => ({ ...span, ids: (idLists[i]?.[1] ?? []) as string[] })));
  }

  /** Moves each cursor to `to` (never back) and counts the ended items among `ids`, the items from `from` (BATCH_ADVANCE_LUA), in one pipeline. */
  private async advance(spans: { batchId: string; from: number; to: number; ids: string[] }[]): Promise<void> {
    const pipeline = this.redis.pipeline() as ReturnType<Redis['pipeline']> & { imagegenFeederAdvance(numKeys: number, ...keysAndArgs: (string | number)[]): unknown };
    for (const { batchId, from, to, ids } of spans) pipeline.imagegenFeederAdvance(1 + ids.length, this.keys.batch(batchId), ...ids.map((id) => this.keys.generation(id)), to, from);
    await pipeline.exec();
  }

  /**
   * The fair share's tie order for this round: tenants take turns being first, and so do a
   * tenant's batches among themselves (a tenant with many batches is first no more often).
   */
  private tieOrder<T extends FeedState>(states: T[]): T[] {
    const byTenant = new Map<string, T[]>();
    for (const s of states) byTenant.set(s.tenant, [...(byTenant.get(s.tenant) ?? []), s]);
    const tenants = [...byTenant.keys()];
    const turn = this.round++;
    const rotate = <U>(list: U[], by: number) => {
      const k = by % list.length;
      return [...list.slice(k), ...list.slice(0, k)];
    };
    // a tenant's batches move on once per turn of the tenants: by the same step, a tenant first in
    // every other round (two tenants) with two batches would always be first with the same one
    return rotate(tenants, turn).flatMap((t) => rotate(byTenant.get(t) ?? [], Math.floor(turn / tenants.length)));
  }

  /**
   * Finishes the cancel of batches whose request stopped part-way (the API process died, or
   * Redis went away under it): once a cancel has been noted neither done nor lately for
   * cancelStalledMs (by Redis's clock), the items it had not reached are cancelled here, from
   * where it got to, as the API would have (items that finished meanwhile stay as they are).
   * Without this they, no longer fed, would wait for the orphan sweep. Looks at up to `budget`
   * items; returns what is left of it.
   */
  private async finishCancels(batches: FeedRead[], budget: number): Promise<number> {
    if (batches.length === 0) return budget;
    const now = await redisTimeMs(this.redis);
    const stalledMs = this.opts.cancelStalledMs ?? 10_000;
    for (const b of batches) {
      if (budget <= 0) break;
      if (now - Math.max(Date.parse(b.cancelledAt as string), b.cancelNotedAt) < stalledMs) continue;
      const batch = { id: b.batchId, tenant: b.tenant };
      try {
        const ids = await this.redis.lrange(this.keys.batchItems(b.batchId), b.cancelledTo, b.cancelledTo + budget - 1);
        await this.opts.cancels.items(batch, ids);
        const done = ids.length < budget || b.cancelledTo + ids.length >= b.total;
        await this.opts.cancels.progress(batch, b.cancelledTo + ids.length, done);
        budget -= ids.length;
        if (done) this.logger.warn('finished the cancel of a batch whose cancel stopped part-way', { batchId: b.batchId, tenant: b.tenant, items: b.total });
      } catch (err) {
        this.logger.warn('could not finish the cancel of a batch; trying again next round', { batchId: b.batchId, error: (err as Error).message });
      }
    }
    return budget;
  }

  /**
   * Batches being written whose writer died (their lease ran out before they were confirmed): the
   * records they wrote go (they were never accepted: not failed, no webhook), up to `budget`.
   * `members`: the first entries of the writing list, read with the feeding list.
   */
  private async removeWhatDeadWritersLeft(members: string[], budget: number): Promise<void> {
    if (members.length === 0) return;
    const refs = members.map(parseBatchListEntry);
    const reads = this.redis.pipeline();
    for (const r of refs) reads.exists(this.keys.batch(r.batchId));
    const alive = ((await reads.exec()) ?? []).map(([, n]) => n === 1);
    for (const [i, r] of refs.entries()) {
      if (alive[i]) continue;
      if (budget <= 0) break;
      try {
        const { scanned, done } = await this.opts.removeUnaccepted({ id: r.batchId, tenant: r.tenant }, budget);
        budget -= scanned;
        if (done) await this.redis.zrem(this.keys.batchesWriting(), r.member);
        if (scanned > 0 && done) this.logger.warn('removed the items of a batch whose writer stopped before confirming it', { batchId: r.batchId, tenant: r.tenant });
      } catch (err) {
        this.logger.warn('could not remove what a stopped batch writer left; trying again next round', { batchId: r.batchId, error: (err as Error).message });
      }
    }
  }

  /** One round: reads every batch being fed, shares the free part of the window, adds those jobs. Returns how many. */
  async tick(): Promise<number> {
    // both lists in one round trip: an idle feeder costs one a round
    const lists = (await this.redis.pipeline().zrange(this.keys.batchesFeeding(), '0', '9999').zrange(this.keys.batchesWriting(), '0', String(WRITING_PER_ROUND - 1)).exec()) ?? [];
    for (const [err] of lists) if (err) throw err;
    const [members, writing] = lists.map(([, list]) => list as string[]) as [string[], string[]];
    const refs = members.map(parseBatchListEntry);
    let read = await this.read(refs);
    // a feeder that does not count (an earlier version's, during an upgrade) moved some cursors on: count what it passed first
    const behind = read.filter((b) => b.countedTo !== undefined && b.countedTo < b.released);
    if (behind.length) {
      await this.countUpTo(behind);
      read = await this.read(refs);
    }
    const states: (FeedState & { released: number })[] = [];
    const finished: string[] = [];
    const cancelling: FeedRead[] = [];
    let inFlight = 0;
    for (const b of read) {
      // a cancelled batch releases nothing more; it stays until its cancel is noted done
      if (b.cancelledAt !== null && !b.gone && !b.cancelsDone) {
        cancelling.push(b);
        continue;
      }
      if (b.gone || b.cancelledAt !== null || b.released >= b.total) {
        finished.push(b.member);
        continue;
      }
      const flying = Math.max(0, b.released - b.releasedDone);
      inFlight += flying;
      states.push({ tenant: b.tenant, batchId: b.batchId, remaining: b.total - b.released, inFlight: flying, released: b.released });
    }
    if (finished.length) await this.redis.zrem(this.keys.batchesFeeding(), ...finished);
    const fed = await this.feed(states, inFlight);
    // after feeding: tidying never holds up a round's jobs
    await this.removeWhatDeadWritersLeft(writing, await this.finishCancels(cancelling, TIDY_PER_ROUND));
    return fed;
  }

  /** Shares the free part of the window among `states`, adds those jobs and moves the cursors. Returns how many. */
  private async feed(states: (FeedState & { released: number })[], inFlight: number): Promise<number> {
    const free = this.opts.window - inFlight;
    if (free <= 0 || states.length === 0) return 0;
    const grants = shareWindow(this.tieOrder(states), free);
    const granted = states.filter((s) => (grants.get(s.batchId)?.length ?? 0) > 0);
    const ranges = this.redis.pipeline();
    for (const s of granted) ranges.lrange(this.keys.batchItems(s.batchId), String(s.released), String(s.released + (grants.get(s.batchId)?.length ?? 0) - 1));
    const idLists = (await ranges.exec()) ?? [];
    const perBatch = granted.map((s, i) => ({
      tenant: s.tenant,
      items: ((idLists[i]?.[1] ?? []) as string[]).map((id, j) => ({
        name: generateJobName(`${s.batchId} #${s.released + j}`),
        data: { generationId: id, tenant: s.tenant, batchId: s.batchId } satisfies GenerateJobInput,
        opts: batchItemJobOptions(id, this.opts.policy, grants.get(s.batchId)?.[j] ?? 0),
      })),
    }));
    const jobs = interleave(perBatch);
    if (jobs.length === 0) return 0;
    await this.queue.addBulk(jobs);
    await this.advance(
      granted.map((s, i) => {
        const ids = (idLists[i]?.[1] ?? []) as string[];
        return { batchId: s.batchId, from: s.released, to: s.released + ids.length, ids };
      }),
    );
    return jobs.length;
  }
}
