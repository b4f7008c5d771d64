import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { GenerationStore, keysFor, type GenerationRecord } from '@imagegen/shared';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnWorker, startRedisServer, type NodeProcess, type RedisServer } from './support/processes';
import { generationRecord, TINY_RESULT } from './support/records';
import { deleteUnder, plainRedis, testPrefix } from './support/redis';
import { WebhookReceiver } from './support/webhook-receiver';

const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[redis-full-webhooks] ${msg}\n`);

describe('webhook events while Redis is full', () => {
  let server: RedisServer;
  let receiver: WebhookReceiver;
  let worker: NodeProcess;
  let redis: Redis;
  let dataDir: string;
  const prefix = testPrefix('fullhooks');
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

  beforeAll(async () => {
    server = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'noeviction'] });
    redis = plainRedis(server.url);
    receiver = await WebhookReceiver.start();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-fullhooks-'));
  });
  afterAll(async () => {
    await worker?.kill();
    if (redis) {
      await redis.config('SET', 'maxmemory', '0').catch(() => undefined);
      await deleteUnder(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect());
    }
    await receiver?.close();
    await server?.destroy();
    await killAllSpawned();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('delivers every event once after Redis had no room when the dispatcher read them', async () => {
    const env = { REDIS_URL: server.url, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info', WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_DISPATCH_START_DELAY_MS: '3000', GENERATOR_BACKOFF_MS: '200' };
    worker = await spawnWorker({ env, name: 'worker' });
    const store = new GenerationStore(redis, keysFor(prefix), 3600);
    const records: GenerationRecord[] = [];
    for (let i = 0; i < 20; i++) {
      const r = generationRecord({ webhook: { url: receiver.url('/full') } });
      await store.create(r);
      await store.complete(r, TINY_RESULT);
      records.push(r);
    }
    await redis.config('SET', 'maxmemory', String(Math.floor((await usedMemory()) / 2)));
    await sleep(8000);
    const during = receiver.on('/full').length;
    await redis.config('SET', 'maxmemory', '0');
    const t = Date.now();
    await eventually(async () => (new Set(receiver.on('/full').map((r) => r.headers['webhook-id'])).size >= 20 ? true : undefined), 90_000, 100);
    await sleep(1000);
    const ids = receiver.on('/full').map((r) => r.headers['webhook-id']);
    log(`received ${during} while full; all 20 ${Date.now() - t} ms after room came back; ${ids.length} requests for ${new Set(ids).size} webhook-ids`);
    log(worker.stdout().split('\n').filter((l) => /warn|error/.test(l)).slice(0, 8).join('\n'));
    expect(during).toBe(0);
    expect(new Set(ids).size).toBe(20);
    expect(ids).toHaveLength(20);
  });
});
