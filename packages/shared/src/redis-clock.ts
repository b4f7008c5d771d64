import type { Redis } from 'ioredis';

/** Redis's clock in ms, read with one TIME call: the one clock every process on every host agrees on. */
export async function redisTimeMs(redis: Redis): Promise<number> {
  return timeReplyMs(await redis.time());
}

/** A `TIME` reply (seconds, microseconds) in ms, for a TIME sent in a pipeline or MULTI. */
export function timeReplyMs([s, us]: readonly (string | number)[]): number {
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** How often the offset to Redis's clock is measured again (clocks drift; hosts get stepped). */
const SAMPLE_EVERY_MS = 60_000;

/**
 * Redis's time, read without a round trip: the offset between this host's clock and Redis's is
 * measured when the connection becomes ready and every minute after (the midpoint of a TIME
 * call), and added to the local clock. Ids sort by the time in them, so every process on every
 * host stamps them from this one clock, whatever its own says. Until the first measurement it
 * is the local clock.
 */
export class RedisClock {
  private offsetMs = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly onReady = () => void this.sample().catch(() => undefined);

  constructor(private readonly redis: Redis) {
    redis.on('ready', this.onReady);
    if (redis.status === 'ready') this.onReady();
    this.timer = setInterval(this.onReady, SAMPLE_EVERY_MS).unref();
  }

  /** Measures the offset now; resolves once it is in use. */
  async sample(): Promise<void> {
    const before = Date.now();
    const redisNow = await redisTimeMs(this.redis);
    const after = Date.now();
    this.offsetMs = redisNow - Math.round((before + after) / 2);
  }

  /** Milliseconds since the epoch on Redis's clock. */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  stop(): void {
    clearInterval(this.timer);
    this.redis.off('ready', this.onReady);
  }
}
