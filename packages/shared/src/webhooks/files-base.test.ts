import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '../keys';
import { PublishedFilesBase, publishFilesBase } from './files-base';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const keys = keysFor(`igtest-filesbase-${randomBytes(4).toString('hex')}`);
let redis: Redis;

beforeAll(() => {
  redis = new Redis(url);
});
afterAll(async () => {
  await redis.del(keys.apiFilesBase());
  await redis.quit();
});

it('a worker uses its fallback until an API process publishes its base, which expires unless renewed', async () => {
  const seen = new PublishedFilesBase(redis, keys, 'http://localhost:3000/files', 60_000);
  expect(await seen.read()).toBe('http://localhost:3000/files');
  const published = publishFilesBase(redis, keys, 'https://images.example.com/api/files');
  try {
    expect(await seen.read()).toBe('https://images.example.com/api/files');
    expect(seen.current).toBe('https://images.example.com/api/files');
    const ttl = await redis.ttl(keys.apiFilesBase());
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
    // gone (expired): the last one read stays
    await redis.del(keys.apiFilesBase());
    expect(await seen.read()).toBe('https://images.example.com/api/files');
  } finally {
    published.stop();
    seen.stop();
  }
});
