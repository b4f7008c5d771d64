import type { Redis } from 'ioredis';
import type { Keys } from '@imagegen/shared';

/**
 * Takes a slot for one delivery to a host, unless the host's circuit is open or every slot is
 * taken. Slots are leases in a sorted set scored by when they end (Redis time), so a worker that
 * dies mid-request frees its slot when the lease runs out. A delivery that finds every slot
 * taken is parked (oldest first) to be woken when one frees.
 * KEYS[1] in-flight set, KEYS[2] circuit, KEYS[3] parked set; ARGV: member, lease ms, max in flight, job id.
 * Returns { 'ok' | 'busy' | 'open', ms until worth trying again }.
 */
const ACQUIRE_LUA = `
local open = redis.call('PTTL', KEYS[2])
if open > 0 then return { 'open', open } end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], 'NX', now, ARGV[4])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) * 2)
  return { 'busy', tonumber(first[2]) - now }
end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return { 'ok', 0 }
`;

/**
 * Gives the slot back, hands it to the oldest parked delivery, and updates the host's health.
 * Consecutive failures open the circuit for a while; once it closes the count stays one short of
 * the threshold, so a single failed probe opens it again while a success clears it.
 * KEYS[1] in-flight set, KEYS[2] failure count, KEYS[3] circuit, KEYS[4] parked set;
 * ARGV: member, health ('up' | 'trouble' | 'unknown'), threshold, open ms.
 * Returns { 1 if this opened the circuit else 0, job id to wake or '' }.
 */
const RELEASE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
local wake = ''
if redis.call('PTTL', KEYS[3]) <= 0 then
  local parked = redis.call('ZPOPMIN', KEYS[4])
  if parked[1] then wake = parked[1] end
end
local opened = 0
if ARGV[2] == 'up' then
  redis.call('DEL', KEYS[2])
elseif ARGV[2] == 'trouble' then
  local threshold = tonumber(ARGV[3])
  local openMs = tonumber(ARGV[4])
  local failures = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], openMs * 4 + 60000)
  if failures >= threshold then
    redis.call('SET', KEYS[3], '1', 'PX', openMs)
    redis.call('SET', KEYS[2], tostring(threshold - 1), 'PX', openMs * 4 + 60000)
    opened = 1
  end
end
return { opened, wake }
`;

export type HostSlot = { kind: 'ok' } | { kind: 'busy' | 'open'; retryInMs: number };
export type HostHealth = 'up' | 'trouble' | 'unknown';

type LimiterRedis = Redis & {
  imagegenHostAcquire(inFlight: string, circuit: string, parked: string, member: string, leaseMs: number, max: number, jobId: string): Promise<[string, number]>;
  imagegenHostRelease(inFlight: string, failures: string, circuit: string, parked: string, member: string, health: HostHealth, threshold: number, openMs: number): Promise<[number, string]>;
};

export interface HostLimiterOptions {
  maxInFlight: number;
  /** Longest a slot is held if its holder never gives it back (the request timeout plus a margin). */
  leaseMs: number;
  circuitFailures: number;
  circuitOpenMs: number;
}

/**
 * Isolation between endpoints, across every worker: at most `maxInFlight` deliveries to one host
 * (host:port) at once, and a circuit that holds a failing host's deliveries back as a whole.
 */
export class HostLimiter {
  private readonly redis: LimiterRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly opts: HostLimiterOptions,
  ) {
    if (!('imagegenHostAcquire' in redis)) {
      redis.defineCommand('imagegenHostAcquire', { numberOfKeys: 3, lua: ACQUIRE_LUA });
      redis.defineCommand('imagegenHostRelease', { numberOfKeys: 4, lua: RELEASE_LUA });
    }
    this.redis = redis as LimiterRedis;
  }

  /** `jobId` is parked when every slot is taken, to be woken by the release that frees one. */
  async acquire(host: string, member: string, jobId: string): Promise<HostSlot> {
    const [kind, ms] = await this.redis.imagegenHostAcquire(
      this.keys.webhookHostInFlight(host),
      this.keys.webhookHostCircuit(host),
      this.keys.webhookHostParked(host),
      member,
      this.opts.leaseMs,
      this.opts.maxInFlight,
      jobId,
    );
    return kind === 'ok' ? { kind: 'ok' } : { kind: kind as 'busy' | 'open', retryInMs: Math.max(0, Number(ms)) };
  }

  /** Takes a parked delivery off the host's list (it has nothing left to send). */
  async unpark(host: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.webhookHostParked(host), jobId);
  }

  /** Says whether this release opened the host's circuit, and which parked job (if any) to wake. */
  async release(host: string, member: string, health: HostHealth): Promise<{ opened: boolean; wake?: string }> {
    const [opened, wake] = await this.redis.imagegenHostRelease(
      this.keys.webhookHostInFlight(host),
      this.keys.webhookHostFailures(host),
      this.keys.webhookHostCircuit(host),
      this.keys.webhookHostParked(host),
      member,
      health,
      this.opts.circuitFailures,
      this.opts.circuitOpenMs,
    );
    return { opened: opened === 1, ...(wake ? { wake } : {}) };
  }
}
