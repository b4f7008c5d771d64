import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { compose, NOW_MS } from './lua/pieces';

/** The due time is kept this long past it: a job promoted late still finds nothing to wait for. */
const KEEP_PAST_DUE_MS = 60_000;

/** KEYS[1] the due-time key; ARGV[1] the delay (ms). Sets now + delay by Redis's clock. */
const SET_DUE_LUA = compose(
  NOW_MS,
  `
local delay = tonumber(ARGV[1])
redis.call('SET', KEYS[1], nowMs() + delay, 'PX', delay + ${KEEP_PAST_DUE_MS})
return 1
`,
);

/** KEYS[1] the due-time key. Returns the ms left until it (0: due, or none set). */
const DUE_IN_LUA = compose(
  NOW_MS,
  `
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = at - nowMs()
if left > 0 then return left end
return 0
`,
);

type DueRedis = Redis & {
  imagegenSetRetryDue(key: string, delayMs: number): Promise<number>;
  imagegenRetryDueIn(key: string): Promise<number>;
};

/**
 * When a generation's next attempt is due, by Redis's clock. BullMQ times a retry by the clock
 * of the worker that failed the attempt, and hands it out by the clock of whichever worker asks
 * next: a worker whose clock runs ahead runs it early, before a backoff or an upstream's
 * Retry-After has passed. The failing worker records the due time here; the worker that starts
 * the retry checks it and puts the job back for what is left.
 */
export class RetryDue {
  private readonly redis: DueRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    if (!('imagegenSetRetryDue' in redis)) {
      redis.defineCommand('imagegenSetRetryDue', { numberOfKeys: 1, lua: SET_DUE_LUA });
      redis.defineCommand('imagegenRetryDueIn', { numberOfKeys: 1, lua: DUE_IN_LUA });
    }
    this.redis = redis as DueRedis;
  }

  async set(id: string, delayMs: number): Promise<void> {
    await this.redis.imagegenSetRetryDue(this.keys.generationRetryDue(id), Math.max(0, Math.round(delayMs)));
  }

  /** Milliseconds until generation `id`'s retry is due (0 when it is, or when none is recorded). */
  dueIn(id: string): Promise<number> {
    return this.redis.imagegenRetryDueIn(this.keys.generationRetryDue(id));
  }

  /** Forgets the due times of these generations' retries: promoted by an operator, they run when handed out. */
  async clear(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) await this.redis.del(...ids.slice(i, i + 500).map((id) => this.keys.generationRetryDue(id)));
  }
}
