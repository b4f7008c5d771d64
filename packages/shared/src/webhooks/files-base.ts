import type { Redis } from 'ioredis';
import type { Keys } from '../keys';

/** The published base lives this long after the last API process renewed it. */
const PUBLISHED_SECONDS = 86_400;
/** How often an API process renews it. */
const PUBLISH_EVERY_MS = 3_600_000;
/** How often a worker reads it again (an API started after the worker, or moved). */
const READ_EVERY_MS = 2_000;

/**
 * Where the API's file URLs start, published in Redis by every API process. A worker builds
 * webhook bodies, whose `data` must be the generation as the GET returns it: a worker without a
 * PUBLIC_BASE_URL of its own (or an S3_PUBLIC_BASE_URL) would otherwise put `localhost` and its
 * own PORT in them, which need not be the API's.
 */
export function publishFilesBase(redis: Redis, keys: Keys, filesBaseUrl: string): { stop(): void } {
  const publish = () => void redis.set(keys.apiFilesBase(), filesBaseUrl, 'EX', PUBLISHED_SECONDS).catch(() => undefined);
  publish();
  // a Redis that lost its data (restart without persistence) hears of it again at once
  redis.on('ready', publish);
  const timer = setInterval(publish, PUBLISH_EVERY_MS).unref();
  return {
    stop() {
      clearInterval(timer);
      redis.off('ready', publish);
    },
  };
}

/** A worker's view of the published base: `fallback` until one is read. */
export class PublishedFilesBase {
  private value: string;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    fallback: string,
    everyMs = READ_EVERY_MS,
  ) {
    this.value = fallback;
    void this.read();
    this.timer = setInterval(() => void this.read(), everyMs).unref();
  }

  /** Reads it now; resolves once read (or once the read failed: the last value stays). */
  async read(): Promise<string> {
    // not queued up while the connection is away: a tick after it is back reads
    if (['reconnecting', 'close', 'end'].includes(this.redis.status)) return this.value;
    const published = await this.redis.get(this.keys.apiFilesBase()).catch(() => null);
    if (published) this.value = published;
    return this.value;
  }

  get current(): string {
    return this.value;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
