import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { composeLua, NOW_MS, type Keys, type QuotaReservation, type QuotaShrink } from '@imagegen/shared';

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

/** The per-minute quotas are fixed windows that start with a tenant's first submission in them. */
const WINDOW_MS = 60_000;

/**
 * Admits a submission of `n` items, in one step: one submission taken from the per-minute
 * submissions quota, `n` from the per-minute items quota, and `n` reserved against the queued
 * cap. The cap counts the queued and active indexes (ZCARD, O(1)) plus the items other requests
 * have reserved but not yet written. Each check refuses with what it counted; a refused
 * submission leaves only the submission taken (a client hammering past its limit keeps being
 * refused). A reservation ends when its request has written its records (which then count in
 * the indexes) or after RESERVATION_MS. Windows and reservations are timed by Redis's clock.
 *
 * KEYS[1] submissions counter, KEYS[2] items counter, KEYS[3] queued index, KEYS[4] active
 * index, KEYS[5] reservations
 * ARGV[1] submissions limit, ARGV[2] n, ARGV[3] items limit, ARGV[4] queued cap,
 * ARGV[5] reservation id, ARGV[6] reservation lifetime (ms), ARGV[7] window (ms)
 * Returns { outcome, submissions used, ms to the submissions window's end, detail, detail }:
 * 'ok' | 'submissions' | 'items' (items used, ms to that window's end) | 'queued' (items counted).
 */
const ADMIT_LUA = composeLua(
  NOW_MS,
  `
local function take(key, n)
  local used = redis.call('INCRBY', key, n)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[7])
    redis.call('PEXPIRE', key, ttl)
  end
  return used, ttl
end
local subs, subsTtl = take(KEYS[1], 1)
if subs > tonumber(ARGV[1]) then return {'submissions', subs, subsTtl, 0, 0} end
local n = tonumber(ARGV[2])
local items, itemsTtl = take(KEYS[2], n)
if items > tonumber(ARGV[3]) then
  redis.call('DECRBY', KEYS[2], n)
  return {'items', subs, subsTtl, items - n, itemsTtl}
end
local now = nowMs()
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local reserved = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  reserved = reserved + tonumber(string.match(m, '|(%d+)$'))
end
local used = redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + reserved
if used + n > tonumber(ARGV[4]) then
  redis.call('DECRBY', KEYS[2], n)
  return {'queued', subs, subsTtl, used, 0}
end
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[6]), ARGV[5] .. '|' .. n)
redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[6]))
return {'ok', subs, subsTtl, 0, 0}
`,
);

type QuotaRedis = Redis & { imagegenAdmit(...args: (string | number)[]): Promise<[string, number, number, number, number]> };

/** Items reserved against the queued cap until the request's records are written. */
export interface Reservation {
  /** Ends the reservation (once; later calls do nothing): call once the records are written, or were not. */
  release(): Promise<void>;
  /** Hands the ending to the script that writes the records (see `GenerationStore.createWithJob`): nothing left to release. */
  handOver(): QuotaReservation;
  /** Hands `n` of the items to the script that writes them (see `BatchStore.addItems`); the rest stays reserved until released. */
  shrink(n: number): QuotaShrink;
}

export interface RateState {
  limit: number;
  remaining: number;
  resetMs: number;
}

export type Admission =
  | { ok: true; submissions: RateState; reservation: Reservation }
  | { ok: false; refused: 'submissions'; submissions: RateState }
  | { ok: false; refused: 'items'; submissions: RateState; items: RateState }
  | { ok: false; refused: 'queued'; submissions: RateState; used: number; cap: number };

/**
 * Per-tenant quotas, counted in Redis so every API process shares them: submissions and items
 * per minute, and the queued cap, all checked by one script (a submission's admission costs
 * one round trip).
 */
export class Quotas {
  private readonly redis: QuotaRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly defaults: TenantQuota,
    private readonly overrides: QuotaOverrides,
  ) {
    if (!('imagegenAdmit' in redis)) redis.defineCommand('imagegenAdmit', { numberOfKeys: 5, lua: ADMIT_LUA });
    this.redis = redis as QuotaRedis;
  }

  of(tenant: string): TenantQuota {
    return { ...this.defaults, ...(Object.hasOwn(this.overrides, tenant) ? this.overrides[tenant] : {}) };
  }

  /** Admits a submission of `n` items, or names the quota that refused it; a Redis failure throws. */
  async admit(tenant: string, n: number): Promise<Admission> {
    const quota = this.of(tenant);
    const member = randomUUID();
    const reservations = this.keys.queuedReservations(tenant);
    const [outcome, subs, subsTtl, detail, detailTtl] = await this.redis.imagegenAdmit(
      // the limit is part of the key: changing a tenant's limit starts it a fresh window
      this.keys.quotaCounter(`sub${quota.submissions}`, tenant),
      this.keys.quotaCounter(`items${quota.items}`, tenant),
      this.keys.tenantGenerations(tenant, 'queued'),
      this.keys.tenantGenerations(tenant, 'active'),
      reservations,
      quota.submissions,
      n,
      quota.items,
      quota.queued,
      member,
      RESERVATION_MS,
      WINDOW_MS,
    );
    const submissions = { limit: quota.submissions, remaining: quota.submissions - Number(subs), resetMs: Number(subsTtl) };
    if (outcome === 'submissions') return { ok: false, refused: 'submissions', submissions };
    if (outcome === 'items') return { ok: false, refused: 'items', submissions, items: { limit: quota.items, remaining: quota.items - Number(detail), resetMs: Number(detailTtl) } };
    if (outcome === 'queued') return { ok: false, refused: 'queued', submissions, used: Number(detail), cap: quota.queued };
    // (the items still reserved are part of the entry, which the admission script sums)
    let reserved = n;
    let entry = `${member}|${n}`;
    // the entry a shrink replaced: its script may not have run (its reply lost, or the batch gone)
    let before = '';
    let released = false;
    return {
      ok: true,
      submissions,
      reservation: {
        release: async () => {
          if (released) return;
          released = true;
          const entries = [before, reserved > 0 ? entry : ''].filter((e) => e !== '');
          if (entries.length) await this.redis.zrem(reservations, ...entries);
        },
        handOver: () => {
          released = true;
          return { key: reservations, entry };
        },
        shrink: (k: number) => {
          before = entry;
          reserved = Math.max(0, reserved - k);
          entry = reserved > 0 ? `${member}|${reserved}` : '';
          return { key: reservations, entry: before, rest: entry };
        },
      },
    };
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
