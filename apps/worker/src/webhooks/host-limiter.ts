import type { Redis } from 'ioredis';
import { HOST_ACQUIRE_LUA, HOST_RELEASE_LUA, type Keys } from '@imagegen/shared';

export type HostSlot = { kind: 'ok' } | { kind: 'busy' | 'open'; retryInMs: number };
export type HostHealth = 'up' | 'trouble' | 'unknown';

type LimiterRedis = Redis & {
  imagegenHostAcquire(inFlight: string, circuit: string, parked: string, member: string, leaseMs: number, max: number, jobId: string): Promise<[string, number, number]>;
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
    readonly opts: HostLimiterOptions,
  ) {
    if (!('imagegenHostAcquire' in redis)) {
      redis.defineCommand('imagegenHostAcquire', { numberOfKeys: 3, lua: HOST_ACQUIRE_LUA });
      redis.defineCommand('imagegenHostRelease', { numberOfKeys: 4, lua: HOST_RELEASE_LUA });
    }
    this.redis = redis as LimiterRedis;
  }

  /** `jobId` is parked when every slot is taken, to be woken by the release that frees one. */
  async acquire(host: string, member: string, jobId: string): Promise<HostSlot> {
    return (await this.acquireAt(host, member, jobId)).slot;
  }

  /** As acquire, with Redis's time when the slot was taken (ms). */
  async acquireAt(host: string, member: string, jobId: string): Promise<{ slot: HostSlot; now: number }> {
    const [kind, ms, now] = await this.redis.imagegenHostAcquire(...this.acquireKeys(host), member, this.opts.leaseMs, this.opts.maxInFlight, jobId);
    return { slot: this.slotOf(kind, ms), now: Number(now) };
  }

  /** A slot as the acquire script answers it. */
  slotOf(kind: string, ms: unknown): HostSlot {
    return kind === 'ok' ? { kind: 'ok' } : { kind: kind as 'busy' | 'open', retryInMs: Math.max(0, Number(ms)) };
  }

  /** The keys `acquire` uses, in its order: in-flight set, circuit, parked set. */
  private acquireKeys(host: string): [inFlight: string, circuit: string, parked: string] {
    return [this.keys.webhookHostInFlight(host), this.keys.webhookHostCircuit(host), this.keys.webhookHostParked(host)];
  }

  /** The keys `release` updates, in its order: in-flight set, failure count, circuit, parked set. */
  releaseKeys(host: string): [inFlight: string, failures: string, circuit: string, parked: string] {
    return [this.keys.webhookHostInFlight(host), this.keys.webhookHostFailures(host), this.keys.webhookHostCircuit(host), this.keys.webhookHostParked(host)];
  }

  /** Takes a parked delivery off the host's list (it has nothing left to send). */
  async unpark(host: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.webhookHostParked(host), jobId);
  }

  /** Says whether this release opened the host's circuit, and which parked job (if any) to wake. */
  async release(host: string, member: string, health: HostHealth): Promise<{ opened: boolean; wake?: string }> {
    const [opened, wake] = await this.redis.imagegenHostRelease(
      ...this.releaseKeys(host),
      member,
      health,
      this.opts.circuitFailures,
      this.opts.circuitOpenMs,
    );
    return { opened: opened === 1, ...(wake ? { wake } : {}) };
  }
}
