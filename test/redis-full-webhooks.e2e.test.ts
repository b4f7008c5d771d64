import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { DeliveryLog, GenerationStore, keysFor, type GenerationRecord } from '@imagegen/shared';
import { eventually, freePort, sleep } from './support/net';
import { killAllSpawned, spawnWorker, startRedisServer, type NodeProcess, type RedisServer } from './support/processes';
import { generationRecord, TINY_RESULT } from './support/records';
import { deleteUnder, plainRedis, testPrefix } from './support/redis';
import { WebhookReceiver } from './support/webhook-receiver';

const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[redis-full-webhooks] ${msg}\n`);

describe('webhook events while Redis is full or a replica', () => {
  let server: RedisServer;
  let receiver: WebhookReceiver;
  let worker: NodeProcess;
  let redis: Redis;
  let dataDir: string;
  const prefix = testPrefix('fullhooks');
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  const fill = async () => redis.config('SET', 'maxmemory', String(Math.floor((await usedMemory()) / 2)));
  const makeRoom = () => redis.config('SET', 'maxmemory', '0');
  /** A failover under way, as a client of the old master sees it: a replica (of a master that is not there). */
  const demote = async () => redis.replicaof('127.0.0.1', String(await freePort()));
  const promote = () => redis.replicaof('NO', 'ONE');

  /** A completed generation whose webhook goes to `path`, answered there by `answers` in order. */
  const completedTo = async (path: string, ...answers: Parameters<WebhookReceiver['script']>[1][]) => {
    receiver.script(path, ...answers);
    const r = generationRecord({ webhook: { url: receiver.url(path) } });
    const store = new GenerationStore(redis, keysFor(prefix), 3600);
    await store.create(r);
    await store.complete(r, TINY_RESULT);
    return r;
  };
  /** Waits for the delivery's end; its log's attempts, as `attempt:status/state`. */
  const endOf = async (r: GenerationRecord) => {
    const deliveries = new DeliveryLog(redis, keysFor(prefix), 3600);
    const ended = async () => ((await deliveries.list(r.id, r.tenant)).at(-1)?.state ?? 'pending') !== 'pending';
    await eventually(async () => ((await ended()) ? true : undefined), 60_000, 200).catch(() => undefined);
    return (await deliveries.list(r.id, r.tenant)).map((a) => `${a.attempt}:${a.status ?? 'none'}/${a.state}`);
  };
  /** A worker whose delivery schedule lasts about 20 s (steps of 0, 1 ms, 60 ms, 0.4 s, 1.4 s, 3.6 s, 7.2 s, 7.2 s). */
  const startFastRetries = async (name: string) => {
    await worker?.kill();
    worker = await spawnWorker({ env: { REDIS_URL: server.url, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info', WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCALE: '0.0002', WORKER_STALLED_INTERVAL_MS: '5000' }, name });
  };

  beforeAll(async () => {
    server = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'noeviction'] });
    redis = plainRedis(server.url);
    receiver = await WebhookReceiver.start();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-fullhooks-'));
  });
  afterEach(async () => {
    await promote();
    await makeRoom();
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

  it('keeps every step of a delivery schedule while Redis is full when a retry comes due', async () => {
    await startFastRetries('worker-steps');
    // eight failures then 200 on the schedule's ninth and last attempt: a step lost leaves it exhausted
    const r = await completedTo('/steps', 500, 500, { status: 500, delayMs: 700 }, 500, 500, 500, 500, 500, 200);
    await eventually(async () => (receiver.on('/steps').length >= 3 ? true : undefined), 10_000, 5);
    await fill();
    await sleep(5000);
    await makeRoom();
    const attempts = await endOf(r);
    const got = receiver.on('/steps');
    log(`full for 5 s as the 4th attempt came due: ${got.length} requests; ${attempts.join(' ')}`);
    expect({ requests: got.length, webhookIds: new Set(got.map((g) => g.headers['webhook-id'])).size, last: attempts.at(-1) }).toEqual({ requests: 9, webhookIds: 1, last: '9:200/delivered' });
  });

  it('does not end a delivery whose attempts meet failovers (Redis a replica for a while)', async () => {
    await startFastRetries('worker-failovers');
    const slow500 = { status: 500, delayMs: 700 };
    const r = await completedTo('/failovers', 500, 500, slow500, slow500, slow500, 200);
    // Redis turns replica while each of the three slow requests is under way: their answers cannot be recorded
    for (const k of [3, 4, 5]) {
      await eventually(async () => (receiver.on('/failovers').length >= k ? true : undefined), 60_000, 5);
      await demote();
      await sleep(3000);
      await promote();
    }
    const attempts = await endOf(r);
    const got = receiver.on('/failovers');
    log(`three failovers of 3 s, each during a request: ${got.length} requests; ${attempts.join(' ')}`);
    expect({ webhookIds: new Set(got.map((g) => g.headers['webhook-id'])).size, last: got.at(-1)?.answeredWith, state: attempts.at(-1)?.split('/')[1] }).toEqual({ webhookIds: 1, last: 200, state: 'delivered' });
  });
});
