import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { CLEAR_MARK_LUA, CREATE_DELIVERIES_LUA, MARK_STARTED_LUA, RECORD_ATTEMPT_LUA, REDELIVER_LUA } from '../records/lua/webhooks';
import { attemptsInRun, deliverySchema, storedAttemptSchema, type Delivery, type DeliveryAttempt, type DeliveryState, type StoredAttempt } from '../schemas/delivery';

/** Most ended deliveries of one millisecond a page of the ended index takes. */
const MAX_ENDED_IN_ONE_MS = 10_000;

/** Attempts kept per generation (or batch); older ones are dropped first. */
export const DELIVERY_ATTEMPTS_KEPT = 100;

export interface AttemptOutcome {
  run: number;
  state: DeliveryState;
  status?: number;
  error?: string;
  durationMs: number;
  /** Set when another attempt follows (state pending). */
  retryInMs?: number;
}

/** A page of a tenant's ended deliveries: each with when it ended (ms), and the time the page ends at (null: nothing). */
export interface EndedPage {
  entries: { subject: string; id: string; at: number }[];
  last: number | null;
}

/* The log's layout and scripts: records/lua/webhooks.ts. */

const isBatch = (subject: string): boolean => subject.startsWith('batch_');

/** Names one redelivery call, so that call made again is known as itself. */
const newCallToken = (): string => randomBytes(9).toString('base64url');

/** The command that creates many deliveries at once, on a connection. */
export const CREATE_DELIVERIES_COMMAND = 'imagegenCreateDeliveries';

type LogRedis = Redis & {
  imagegenCreateDeliveries(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number[]>;
  imagegenRecordAttempt(log: string, owner: string, ended: string, ...args: (string | number)[]): Promise<'ok' | 'missing' | 'stale'>;
  imagegenRedeliver(key: string, owner: string, id: string, ttl: number, run: number | '', states: string, call: string): Promise<number>;
  imagegenMarkStarted(log: string, id: string, run: number, member: string, kept: number): Promise<'ok' | 'missing' | 'stale'>;
  imagegenClearMark(log: string, id: string, member: string): Promise<null>;
};

/** The delivery log: what was sent, each attempt and its outcome, kept as long as the record. */
export class DeliveryLog {
  private readonly redis: LogRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    readonly retentionSeconds: number,
    readonly kept = DELIVERY_ATTEMPTS_KEPT,
  ) {
    if (!(CREATE_DELIVERIES_COMMAND in redis)) {
      redis.defineCommand(CREATE_DELIVERIES_COMMAND, { lua: CREATE_DELIVERIES_LUA });
      redis.defineCommand('imagegenRecordAttempt', { numberOfKeys: 3, lua: RECORD_ATTEMPT_LUA });
      redis.defineCommand('imagegenRedeliver', { numberOfKeys: 2, lua: REDELIVER_LUA });
      redis.defineCommand('imagegenMarkStarted', { numberOfKeys: 1, lua: MARK_STARTED_LUA });
      redis.defineCommand('imagegenClearMark', { numberOfKeys: 1, lua: CLEAR_MARK_LUA });
    }
    this.redis = redis as LogRedis;
  }

  keyOf(subject: string): string {
    return isBatch(subject) ? this.keys.batchDeliveries(subject) : this.keys.generationDeliveries(subject);
  }

  /** The hash the subject's log lives as long as (see KEEP_LOG): the generation's record, or the batch's. */
  ownerKeyOf(subject: string): string {
    return isBatch(subject) ? this.keys.batch(subject) : this.keys.generation(subject);
  }

  /** The tenant's index of deliveries that ended failed or exhausted. */
  endedKeyOf(tenant: string): string {
    return this.keys.tenantEndedDeliveries(tenant);
  }

  /**
   * Creates each delivery unless it exists (then its frozen body stays as it was): one script call.
   * Says, for each, whether it was new (false: dispatched before, by a process that died).
   */
  async createMany(deliveries: { delivery: Delivery; body: string }[]): Promise<boolean[]> {
    if (deliveries.length === 0) return [];
    const logs: string[] = [];
    const args: (string | number)[] = [this.retentionSeconds];
    for (const { delivery, body } of deliveries) {
      logs.push(this.keyOf(delivery.subject), this.ownerKeyOf(delivery.subject));
      args.push(delivery.id, JSON.stringify(delivery), body);
    }
    const created = await this.redis.imagegenCreateDeliveries(logs.length, ...logs, ...args);
    return created.map((c) => c === 1);
  }

  /** The delivery and its frozen body, or null once it is gone (retention ended). */
  async load(subject: string, id: string): Promise<{ delivery: Delivery; body: string } | null> {
    const [meta, body] = await this.redis.hmget(this.keyOf(subject), `d:${id}`, `b:${id}`);
    if (!meta || body === null || body === undefined) return null;
    return { delivery: deliverySchema.parse(JSON.parse(meta)), body };
  }

  /**
   * Notes that an attempt of run `d.run` starts (holding the slot `member`), until it is recorded;
   * another found still under way is logged first, as cut short (see START_MARKS). Marks nothing
   * when the delivery is gone ('missing') or no longer pending in that run ('stale').
   */
  markStarted(d: Pick<Delivery, 'subject' | 'id' | 'run'>, member: string): Promise<'ok' | 'missing' | 'stale'> {
    return this.redis.imagegenMarkStarted(this.keyOf(d.subject), d.id, d.run, member, this.kept);
  }

  /** Takes back the mark of the attempt holding `member` (if it is still its): it ended without sending anything. */
  async clearMark(d: Pick<Delivery, 'subject' | 'id'>, member: string): Promise<void> {
    await this.redis.imagegenClearMark(this.keyOf(d.subject), d.id, member);
  }

  recordAttempt(d: Pick<Delivery, 'tenant' | 'subject' | 'id'>, o: AttemptOutcome): Promise<'ok' | 'missing' | 'stale'> {
    return this.redis.imagegenRecordAttempt(this.keyOf(d.subject), this.ownerKeyOf(d.subject), this.endedKeyOf(d.tenant), ...this.attemptFields(d.subject, d.id, o), this.retentionSeconds, this.kept);
  }

  /** An attempt as the log's scripts take it: subject, id, run, state, status, error, durationMs, retryInMs ('' = none). */
  attemptFields(subject: string, id: string, o: AttemptOutcome): (string | number)[] {
    return [
      subject,
      id,
      o.run,
      o.state,
      o.status ?? '',
      (o.error ?? '').slice(0, 500),
      Math.max(0, Math.round(o.durationMs)),
      o.retryInMs === undefined ? '' : Math.max(0, Math.round(o.retryInMs)),
    ];
  }

  /**
   * The tenant's deliveries of `subjects` now in one of `states`, each once, in one pipelined read
   * per round: HSCAN with a MATCH leaves the frozen bodies and the attempts in Redis.
   */
  async inStates(subjects: string[], tenant: string, states: readonly DeliveryState[]): Promise<Delivery[]> {
    // by id: a field scan may name an entry twice
    const found = new Map<string, Delivery>();
    let scans = subjects.map((subject) => ({ key: this.keyOf(subject), cursor: '0' }));
    while (scans.length) {
      const pipeline = this.redis.pipeline();
      for (const { key, cursor } of scans) pipeline.hscan(key, cursor, 'MATCH', 'd:*', 'COUNT', 1000);
      const replies = (await pipeline.exec()) ?? [];
      const next: typeof scans = [];
      replies.forEach(([err, reply], i) => {
        if (err) throw err;
        const [cursor, flat] = reply as [string, string[]];
        for (let j = 1; j < flat.length; j += 2) {
          const d = deliverySchema.parse(JSON.parse(flat[j] as string));
          if (d.tenant === tenant && states.includes(d.state)) found.set(d.id, d);
        }
        if (cursor !== '0') next.push({ key: scans[i]!.key, cursor });
      });
      scans = next;
    }
    return [...found.values()];
  }

  /**
   * A page of the tenant's deliveries that ended failed or exhausted between `from` and `until`
   * (ms, inclusive; `after` makes `from` exclusive), oldest first, each with when it ended.
   * Deliveries that ended in the same millisecond as the page's last one all come with it, so the
   * next page starts strictly after that time and never splits them (nor skips one whose time
   * moved meanwhile).
   */
  async endedPage(tenant: string, from: number, until: number, count: number, after = false): Promise<EndedPage> {
    const key = this.endedKeyOf(tenant);
    return this.wholeMilliseconds(key, await this.redis.zrangebyscore(key, after ? `(${from}` : String(from), until, 'WITHSCORES', 'LIMIT', 0, count), count);
  }

  /** As endedPage, newest first, from the start or from strictly before `before` (ms). */
  async endedPageNewestFirst(tenant: string, before: number | null, count: number): Promise<EndedPage> {
    const key = this.endedKeyOf(tenant);
    return this.wholeMilliseconds(key, await this.redis.zrevrangebyscore(key, before === null ? '+inf' : `(${before}`, '-inf', 'WITHSCORES', 'LIMIT', 0, count), count);
  }

  /** Whether the tenant's index holds a delivery that ended strictly before `at` (ms): a page ending at `at` has one after it. */
  async endedBefore(tenant: string, at: number): Promise<boolean> {
    return (await this.redis.zrevrangebyscore(this.endedKeyOf(tenant), `(${at}`, '-inf', 'LIMIT', 0, 1)).length > 0;
  }

  /** A page read (member, score, …) completed with the rest of its last millisecond's entries when it came back full. */
  private async wholeMilliseconds(key: string, flat: string[], count: number): Promise<EndedPage> {
    if (flat.length === 0) return { entries: [], last: null };
    const read: { member: string; at: number }[] = [];
    for (let i = 0; i < flat.length; i += 2) read.push({ member: flat[i] as string, at: Number(flat[i + 1]) });
    const last = (read[read.length - 1] as { at: number }).at;
    if (read.length === count) {
      const page = new Set(read.map((r) => r.member));
      // one millisecond holds what a few batched settle calls (at most 400 endings each) wrote
      for (const member of await this.redis.zrangebyscore(key, last, last, 'LIMIT', 0, MAX_ENDED_IN_ONE_MS)) if (!page.has(member)) read.push({ member, at: last });
    }
    const entries = read.flatMap(({ member, at }) => {
      const [subject, id] = member.split('|');
      return subject && id ? [{ subject, id, at }] : [];
    });
    return { entries, last };
  }

  /** The deliveries (without bodies) of `refs`, in one pipelined read; null where one is gone. */
  async loadMany(refs: { subject: string; id: string }[]): Promise<(Delivery | null)[]> {
    if (refs.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const { subject, id } of refs) pipeline.hget(this.keyOf(subject), `d:${id}`);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, raw]) => {
      if (err) throw err;
      return typeof raw === 'string' ? deliverySchema.parse(JSON.parse(raw)) : null;
    });
  }

  /**
   * Starts a new run of each delivery in one round trip, each only if it is still in the run and
   * state it was read in (so two calls, or an attempt meanwhile, never start it twice); null
   * where one is gone or has changed. `call` names this call (made again, it starts nothing more
   * and answers the same runs).
   */
  async redeliverMany(deliveries: readonly Pick<Delivery, 'id' | 'subject' | 'run' | 'state'>[], call = newCallToken()): Promise<(number | null)[]> {
    if (deliveries.length === 0) return [];
    const pipeline = this.redis.pipeline() as ReturnType<Redis['pipeline']> & { imagegenRedeliver(key: string, owner: string, id: string, ttl: number, run: number, states: string, call: string): unknown };
    for (const d of deliveries) pipeline.imagegenRedeliver(this.keyOf(d.subject), this.ownerKeyOf(d.subject), d.id, this.retentionSeconds, d.run, d.state, call);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, run]) => {
      if (err) throw err;
      return (run as number) < 0 ? null : (run as number);
    });
  }

  /** Starts a new run of a delivery (same webhook-id, same body); null if there is no such delivery. `call` as in redeliverMany. */
  async redeliver(subject: string, id: string, call = newCallToken()): Promise<number | null> {
    const run = await this.redis.imagegenRedeliver(this.keyOf(subject), this.ownerKeyOf(subject), id, this.retentionSeconds, '', '', call);
    return run < 0 ? null : run;
  }

  /**
   * Every attempt, oldest first, plus a `pending` row (attempt 0) for each delivery not tried yet
   * in its current run (never tried, or redelivered and waiting for its first attempt).
   * An attempt's state is what came of it: `pending` while its delivery waits for the next
   * attempt, `failed` once a later attempt was made, else how the delivery ended. Only the
   * tenant's own deliveries are listed.
   */
  async list(subject: string, tenant: string): Promise<DeliveryAttempt[]> {
    const hash = await this.redis.hgetall(this.keyOf(subject));
    const attempts: { seq: number; row: DeliveryAttempt }[] = [];
    const deliveries = new Map<string, Delivery>();
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith('d:')) {
        const d = deliverySchema.parse(JSON.parse(value));
        if (d.tenant === tenant) deliveries.set(d.id, d);
      }
    }
    for (const [field, value] of Object.entries(hash)) {
      if (!field.startsWith('a:')) continue;
      const a = storedAttemptSchema.parse(JSON.parse(value));
      if (!deliveries.has(a.id)) continue;
      attempts.push({ seq: Number(field.slice(2)), row: toRow(a) });
    }
    attempts.sort((x, y) => x.seq - y.seq);
    const rows = attempts.map((a) => a.row);
    // recorded as `pending` (another attempt to follow); once that one exists, this one simply failed
    const last = new Map(rows.map((r, i) => [r.id, i]));
    rows.forEach((r, i) => {
      if (r.state === 'pending' && last.get(r.id) !== i) r.state = 'failed';
    });
    for (const d of deliveries.values()) {
      const latest = last.get(d.id);
      if (!notTriedInRun(d, latest === undefined ? undefined : rows[latest])) continue;
      rows.push({ id: d.id, event: d.event, webhookId: d.webhookId, attempt: 0, at: new Date(d.redeliveredAt ?? d.createdAt).toISOString(), durationMs: 0, state: d.state });
    }
    return rows;
  }
}

/**
 * A delivery never tried, or redelivered and waiting for its run's first recorded attempt (its
 * latest row, of the run before, says how that ended; one cut short in this run says pending already).
 */
function notTriedInRun(d: Delivery, latest: DeliveryAttempt | undefined): boolean {
  if (d.attempts === 0) return true;
  return d.run > 0 && d.state === 'pending' && attemptsInRun(d) === 0 && latest?.state !== 'pending';
}

function toRow(a: StoredAttempt): DeliveryAttempt {
  const row: DeliveryAttempt = { id: a.id, event: a.event, webhookId: a.webhookId, attempt: a.attempt, at: new Date(a.at).toISOString(), durationMs: a.durationMs, state: a.state };
  if (a.status !== undefined) row.status = a.status;
  if (a.error !== undefined) row.error = a.error;
  if (a.nextAttemptAt !== undefined) row.nextAttemptAt = new Date(a.nextAttemptAt).toISOString();
  return row;
}
