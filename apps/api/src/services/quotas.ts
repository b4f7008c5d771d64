import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Keys } from '@imagegen/shared';

export interface TenantQuota {
  /** Submissions (requests) per minute. */
  submissions: number;
  /** Items per minute: a batch of n items counts n. */
  items: number;
  /** Queued-plus-active items at any moment. */
  queued: number;
}

export type QuotaOverrides = Record<string, Partial<TenantQuota>>;

/** How long a reservation against the queued cap holds if its request dies before releasing it. */
export const RESERVATION_MS = 60_000;

/**
 * Reserves `n` items against a tenant's queued cap, atomically: counts the queued and active
 * indexes (ZCARD, O(1)) plus the items other requests have reserved but not yet written, and
 * reserves only if all of it stays within the cap. A reservation ends when its request has
 * written its records (which then count in the indexes) or after RESERVATION_MS.
 *
 * KEYS[1] queued index, KEYS[2] active index, KEYS[3] reservations
 * ARGV[1] reservation id, ARGV[2] n, ARGV[3] cap, ARGV[4] reservation lifetime (ms)
 * Returns { 1 | 0, items counted before this request }.
 */
const RESERVE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local reserved = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  reserved = reserved + tonumber(string.match(m, '|(%d+)$'))
end
local used = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + reserved
if used + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return {0, used} end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1] .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]))
return {1, used}
`;

type QuotaRedis = Redis & { imagegenReserveQueued(q: string, a: string, r: string, id: string, n: number, cap: number, ttl: number): Promise<[number, number]> };

export interface Reservation {
  /** Ends the reservation: call once the records are written (or were not). */
  release(): Promise<void>;
}

export type RateOutcome = { ok: true; limit: number; remaining: number; resetMs: number } | { ok: false; limit: number; remaining: number; resetMs: number };

/**
 * Per-tenant quotas, counted in Redis so every API process shares them: submissions and items
 * per minute (rate-limiter-flexible, one limiter per distinct limit), and the queued cap.
 */
export class Quotas {
  private readonly redis: QuotaRedis;
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly defaults: TenantQuota,
    private readonly overrides: QuotaOverrides,
  ) {
    if (!('imagegenReserveQueued' in redis)) redis.defineCommand('imagegenReserveQueued', { numberOfKeys: 3, lua: RESERVE_LUA });
    this.redis = redis as QuotaRedis;
  }

  of(tenant: string): TenantQuota {
    return { ...this.defaults, ...(Object.hasOwn(this.overrides, tenant) ? this.overrides[tenant] : {}) };
  }

  private limiter(kind: 'submissions' | 'items', points: number): RateLimiterRedis {
    const name = `${kind}:${points}`;
    let limiter = this.limiters.get(name);
    if (!limiter) {
      // the limit is part of the key: changing a tenant's limit starts it a fresh window
      limiter = new RateLimiterRedis({ storeClient: this.redis, keyPrefix: this.keys.quota(kind === 'submissions' ? `sub${points}` : `items${points}`), points, duration: 60 });
      this.limiters.set(name, limiter);
    }
    return limiter;
  }

  /** Takes `n` from a per-minute quota; a refusal is a value, a Redis failure throws. */
  async take(kind: 'submissions' | 'items', tenant: string, n: number): Promise<RateOutcome> {
    const limit = this.of(tenant)[kind];
    const limiter = this.limiter(kind, limit);
    try {
      const r = await limiter.consume(tenant, n);
      return { ok: true, limit, remaining: r.remainingPoints, resetMs: r.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) return { ok: false, limit, remaining: err.remainingPoints, resetMs: err.msBeforeNext };
      throw err;
    }
  }

  /** Gives back what `take` took (a request refused by a later quota). */
  async giveBack(kind: 'submissions' | 'items', tenant: string, n: number): Promise<void> {
    await this.limiter(kind, this.of(tenant)[kind]).reward(tenant, n);
  }

  /** Reserves `n` items against the queued cap: a reservation, or the count that refused it. */
  async reserveQueued(tenant: string, n: number): Promise<{ reservation: Reservation } | { refused: { used: number; cap: number } }> {
    const cap = this.of(tenant).queued;
    const member = randomUUID();
    const key = this.keys.queuedReservations(tenant);
    const [ok, used] = await this.redis.imagegenReserveQueued(
      this.keys.tenantGenerations(tenant, 'queued'),
      this.keys.tenantGenerations(tenant, 'active'),
      key,
      member,
      n,
      cap,
      RESERVATION_MS,
    );
    if (!ok) return { refused: { used: Number(used), cap } };
    return { reservation: { release: async () => void (await this.redis.zrem(key, `${member}|${n}`)) } };
  }
}

/** `tenant:submissions=100/items=5000/queued=200,...`: problems name the entry, never more. */
export function parseQuotaOverrides(raw: string, isTenant: (s: string) => boolean): { overrides: QuotaOverrides; problems: string[] } {
  const overrides: QuotaOverrides = {};
  const problems: string[] = [];
  raw
    .split(',')
    .map((e) => e.trim())
    .forEach((entry, index) => {
      if (!entry) return;
      const at = entry.indexOf(':');
      const tenant = entry.slice(0, Math.max(at, 0)).trim();
      if (at < 0 || !isTenant(tenant)) {
        problems.push(`entry ${index + 1} is not tenant:name=value/...`);
        return;
      }
      const quota: Partial<TenantQuota> = {};
      for (const part of entry.slice(at + 1).split('/')) {
        const m = /^\s*(submissions|items|queued)\s*=\s*(\d{1,9})\s*$/.exec(part);
        if (!m || Number(m[2]) < 1) {
          problems.push(`entry ${index + 1} (${tenant}): each part must be submissions=N, items=N or queued=N with N ≥ 1`);
          return;
        }
        quota[m[1] as keyof TenantQuota] = Number(m[2]);
      }
      overrides[tenant] = { ...overrides[tenant], ...quota };
    });
  return { overrides, problems };
}
