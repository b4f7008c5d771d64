import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import type { WebhookEvent } from '../schemas/request';

export const DELIVERY_STATES = ['pending', 'delivered', 'failed', 'exhausted'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** Attempts kept per generation (or batch); older ones are dropped first. */
export const DELIVERY_ATTEMPTS_KEPT = 100;

/** One delivery: an event for one endpoint, with its frozen body, tried until it ends. */
export interface Delivery {
  id: string;
  event: WebhookEvent;
  webhookId: string;
  url: string;
  tenant: string;
  subject: string;
  createdAt: number;
  state: DeliveryState;
  /** 0 for the dispatch, +1 per redelivery. */
  run: number;
  attempts: number;
  nextAttemptAt?: number;
}

/** One row of `GET /v1/generations/:id/deliveries`. */
export interface DeliveryAttempt {
  id: string;
  event: WebhookEvent;
  webhookId: string;
  attempt: number;
  at: string;
  status?: number;
  error?: string;
  durationMs: number;
  nextAttemptAt?: string;
  state: DeliveryState;
}

export interface AttemptOutcome {
  run: number;
  state: DeliveryState;
  status?: number;
  error?: string;
  durationMs: number;
  /** Set when another attempt follows (state pending). */
  retryInMs?: number;
}

/*
 * One hash per generation (or batch) holds its deliveries and attempts:
 *   d:<deliveryId>  the delivery (JSON)        b:<deliveryId>  its frozen body bytes
 *   a:<n>           the n-th attempt (JSON)    seq             attempts written so far
 * Every write sets the expiry to the record retention.
 */

/** KEYS[1] log; ARGV: id, delivery JSON, body, ttl. Returns 1 if new, 0 if it existed (a re-dispatch). */
const CREATE_LUA = `
local created = redis.call('HSETNX', KEYS[1], 'd:' .. ARGV[1], ARGV[2])
if created == 1 then redis.call('HSET', KEYS[1], 'b:' .. ARGV[1], ARGV[3]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return created
`;

/**
 * KEYS[1] log; ARGV: id, run, state, status, error, durationMs, retryInMs ('' = none), ttl, kept.
 * Times come from Redis. Returns 'ok', 'missing', or 'stale' (a newer run took over).
 */
const RECORD_ATTEMPT_LUA = `
local raw = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if not raw then return 'missing' end
local d = cjson.decode(raw)
if tonumber(d.run) ~= tonumber(ARGV[2]) then return 'stale' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
d.attempts = (tonumber(d.attempts) or 0) + 1
d.state = ARGV[3]
local a = { id = d.id, event = d.event, webhookId = d.webhookId, attempt = d.attempts, at = now - tonumber(ARGV[6]),
  durationMs = tonumber(ARGV[6]), state = ARGV[3] }
if ARGV[4] ~= '' then a.status = tonumber(ARGV[4]) end
if ARGV[5] ~= '' then a.error = ARGV[5] end
if ARGV[7] ~= '' then
  a.nextAttemptAt = now + tonumber(ARGV[7])
  d.nextAttemptAt = a.nextAttemptAt
else
  d.nextAttemptAt = nil
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'a:' .. seq, cjson.encode(a), 'd:' .. ARGV[1], cjson.encode(d))
if seq > tonumber(ARGV[9]) then redis.call('HDEL', KEYS[1], 'a:' .. (seq - tonumber(ARGV[9]))) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
return 'ok'
`;

/** KEYS[1] log; ARGV: id, ttl. Starts a new run of the delivery; returns its number, or -1 if unknown. */
const REDELIVER_LUA = `
local raw = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if not raw then return -1 end
local d = cjson.decode(raw)
d.run = (tonumber(d.run) or 0) + 1
d.state = 'pending'
d.nextAttemptAt = nil
redis.call('HSET', KEYS[1], 'd:' .. ARGV[1], cjson.encode(d))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return d.run
`;

type LogRedis = Redis & {
  imagegenCreateDelivery(key: string, id: string, delivery: string, body: string, ttl: number): Promise<number>;
  imagegenRecordAttempt(key: string, ...args: (string | number)[]): Promise<'ok' | 'missing' | 'stale'>;
  imagegenRedeliver(key: string, id: string, ttl: number): Promise<number>;
};

/** The delivery log: what was sent, each attempt and its outcome, kept as long as the record. */
export class DeliveryLog {
  private readonly redis: LogRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
    private readonly kept = DELIVERY_ATTEMPTS_KEPT,
  ) {
    if (!('imagegenCreateDelivery' in redis)) {
      redis.defineCommand('imagegenCreateDelivery', { numberOfKeys: 1, lua: CREATE_LUA });
      redis.defineCommand('imagegenRecordAttempt', { numberOfKeys: 1, lua: RECORD_ATTEMPT_LUA });
      redis.defineCommand('imagegenRedeliver', { numberOfKeys: 1, lua: REDELIVER_LUA });
    }
    this.redis = redis as LogRedis;
  }

  keyOf(subject: string): string {
    return subject.startsWith('batch_') ? this.keys.batchDeliveries(subject) : this.keys.generationDeliveries(subject);
  }

  /**
   * Creates each delivery unless it exists (then its frozen body stays as it was): one round trip.
   * Says, for each, whether it was new (false: dispatched before, by a process that died).
   */
  async createMany(deliveries: { delivery: Delivery; body: string }[]): Promise<boolean[]> {
    if (deliveries.length === 0) return [];
    const pipeline = this.redis.pipeline() as unknown as LogRedis & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const { delivery, body } of deliveries) {
      pipeline.imagegenCreateDelivery(this.keyOf(delivery.subject), delivery.id, JSON.stringify(delivery), body, this.retentionSeconds);
    }
    const replies = (await pipeline.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    return replies.map(([, created]) => created === 1);
  }

  /** The delivery and its frozen body, or null once it is gone (retention ended). */
  async load(subject: string, id: string): Promise<{ delivery: Delivery; body: string } | null> {
    const [meta, body] = await this.redis.hmget(this.keyOf(subject), `d:${id}`, `b:${id}`);
    if (!meta || body === null || body === undefined) return null;
    return { delivery: JSON.parse(meta) as Delivery, body };
  }

  recordAttempt(subject: string, id: string, o: AttemptOutcome): Promise<'ok' | 'missing' | 'stale'> {
    return this.redis.imagegenRecordAttempt(
      this.keyOf(subject),
      id,
      o.run,
      o.state,
      o.status ?? '',
      (o.error ?? '').slice(0, 500),
      Math.max(0, Math.round(o.durationMs)),
      o.retryInMs === undefined ? '' : Math.max(0, Math.round(o.retryInMs)),
      this.retentionSeconds,
      this.kept,
    );
  }

  /** Starts a new run of a delivery (same webhook-id, same body); null if there is no such delivery. */
  async redeliver(subject: string, id: string): Promise<number | null> {
    const run = await this.redis.imagegenRedeliver(this.keyOf(subject), id, this.retentionSeconds);
    return run < 0 ? null : run;
  }

  /**
   * Every attempt, oldest first, plus a `pending` row (attempt 0) for each delivery not tried yet.
   * Only the tenant's own deliveries are listed.
   */
  async list(subject: string, tenant: string): Promise<DeliveryAttempt[]> {
    const hash = await this.redis.hgetall(this.keyOf(subject));
    const attempts: { seq: number; row: DeliveryAttempt }[] = [];
    const deliveries = new Map<string, Delivery>();
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith('d:')) {
        const d = JSON.parse(value) as Delivery;
        if (d.tenant === tenant) deliveries.set(d.id, d);
      }
    }
    for (const [field, value] of Object.entries(hash)) {
      if (!field.startsWith('a:')) continue;
      const a = JSON.parse(value) as Omit<DeliveryAttempt, 'at' | 'nextAttemptAt'> & { at: number; nextAttemptAt?: number };
      if (!deliveries.has(a.id)) continue;
      attempts.push({ seq: Number(field.slice(2)), row: toRow(a) });
    }
    attempts.sort((x, y) => x.seq - y.seq);
    const rows = attempts.map((a) => a.row);
    for (const d of deliveries.values()) {
      if (d.attempts > 0) continue;
      rows.push({ id: d.id, event: d.event, webhookId: d.webhookId, attempt: 0, at: new Date(d.createdAt).toISOString(), durationMs: 0, state: d.state });
    }
    return rows;
  }
}

function toRow(a: Omit<DeliveryAttempt, 'at' | 'nextAttemptAt'> & { at: number; nextAttemptAt?: number }): DeliveryAttempt {
  const row: DeliveryAttempt = { id: a.id, event: a.event, webhookId: a.webhookId, attempt: a.attempt, at: new Date(a.at).toISOString(), durationMs: a.durationMs, state: a.state };
  if (a.status !== undefined) row.status = a.status;
  if (a.error !== undefined) row.error = a.error;
  if (a.nextAttemptAt !== undefined) row.nextAttemptAt = new Date(a.nextAttemptAt).toISOString();
  return row;
}
