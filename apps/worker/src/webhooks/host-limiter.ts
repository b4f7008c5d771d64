import type { Redis } from 'ioredis';
import type { Keys } from '@imagegen/shared';

/**
 * Takes a slot for one delivery to a host, unless the host's circuit is open or every slot is
 * taken. Slots are leases in a sorted set scored by when they end (Redis time), so a worker that
 * dies mid-request frees its slot when the lease runs out.
 * KEYS[1] in-flight set, KEYS[2] circuit; ARGV: member, lease ms, max in flight.
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
  return { 'busy', tonumber(first[2]) - now }
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return { 'ok', 0 }
`;

/**
 * Gives the slot back and updates the host's health. Consecutive failures open the circuit for
 * a while; once it closes the count stays one short of the threshold, so a single failed probe
 * opens it again while a success clears it.
 * KEYS[1] in-flight set, KEYS[2] failure count, KEYS[3] circuit;
 * ARGV: member, health ('up' | 'trouble' | 'unknown'), threshold, open ms.
 */
const RELEASE_LUA = `
redis.call('ZREM', KEYS[1], ARGV[1])
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
    return 1
  end
end
return 0
`;

export type HostSlot = { kind: 'ok' } | { kind: 'busy' | 'open'; retryInMs: number };
export type HostHealth = 'up' | 'trouble' | 'unknown';

type LimiterRedis = Redis & {
  imagegenHostAcquire(inFlight: string, circuit: string, member: string, leaseMs: number, max: number): Promise<[string, number]>;
  imagegenHostRelease(inFlight: string, failures: string, circuit: string, member: string, health: HostHealth, threshold: number, openMs: number): Promise<number>;
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
      redis.defineCommand('imagegenHostAcquire', { numberOfKeys: 2, lua: ACQUIRE_LUA });
      redis.defineCommand('imagegenHostRelease', { numberOfKeys: 3, lua: RELEASE_LUA });
    }
    this.redis = redis as LimiterRedis;
  }

  async acquire(host: string, member: string): Promise<HostSlot> {
    const [kind, ms] = await this.redis.imagegenHostAcquire(this.keys.webhookHostInFlight(host), this.keys.webhookHostCircuit(host), member, this.opts.leaseMs, this.opts.maxInFlight);
    return kind === 'ok' ? { kind: 'ok' } : { kind: kind as 'busy' | 'open', retryInMs: Math.max(0, Number(ms)) };
  }

  /** Returns true when this release opened the host's circuit. */
  async release(host: string, member: string, health: HostHealth): Promise<boolean> {
    const opened = await this.redis.imagegenHostRelease(
      this.keys.webhookHostInFlight(host),
      this.keys.webhookHostFailures(host),
      this.keys.webhookHostCircuit(host),
      member,
      health,
      this.opts.circuitFailures,
      this.opts.circuitOpenMs,
    );
    return opened === 1;
  }
}
