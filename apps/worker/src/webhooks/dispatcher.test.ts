import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BatchStore, createLogger, DeliveryLog, GenerationStore, keysFor, newFileToken, newId, OUTBOX_GROUP, QUEUES, WebhookSecrets, type GenerationRecord } from '@imagegen/shared';
import { AttemptBatcher, type SlotRequest } from './attempt-batcher';
import type { AttemptDeps } from './attempt';
import { createDeliveryWorker } from './delivery.worker';
import { OutboxDispatcher } from './dispatcher';
import { HostLimiter, type HostSlot } from './host-limiter';
import { WebhookSender } from './sender';
import { until } from '../__tests__/until';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-dispatcher-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let queue: Queue;
let receiver: http.Server;
let port: number;
/** webhook-id of every request the receiver got. */
const received: string[] = [];

beforeAll(async () => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUES.webhooks, { connection: redis, prefix });
  receiver = http.createServer((req, res) => {
    received.push(String(req.headers['webhook-id']));
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  port = (receiver.address() as AddressInfo).port;
});
afterAll(async () => {
  receiver.close();
  await queue.obliterate({ force: true });
  await queue.close();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

/** A batcher whose first slot request runs in Redis and then fails, as a call whose reply a cut connection lost would. */
class ReplyLostOnce extends AttemptBatcher {
  failures = 0;
  override async acquire(request: SlotRequest): Promise<HostSlot> {
    const slot = await super.acquire(request);
    if (this.failures++ > 0) return slot;
    throw new Error('Connection is closed.');
  }
}

function completedWithWebhook(): GenerationRecord {
  return {
    id: newId('gen'),
    tenant: 'td',
    status: 'queued',
    stage: 'queued',
    progress: 0,
    request: { topic: 'dispatcher', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: null,
    priority: 'normal',
    attempts: 0,
    createdAt: new Date().toISOString(),
    fileToken: newFileToken(),
    webhook: { url: `http://127.0.0.1:${port}/hook` },
  };
}

it('a first attempt whose slot request fails after it ran gives back its slot and mark: the event is sent once, logged once, not as cut short', async () => {
  const store = new GenerationStore(redis, keys, 3600);
  const record = completedWithWebhook();
  await store.create(record);
  await store.markActive(record, 1);
  await store.complete(record, { image: { key: 'k/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] });

  const log = new DeliveryLog(redis, keys, 3600);
  const limiter = new HostLimiter(redis, keys, { maxInFlight: 5, leaseMs: 30_000, circuitFailures: 100, circuitOpenMs: 1000 });
  const batcher = new ReplyLostOnce(redis, keys, log, limiter, OUTBOX_GROUP);
  const secrets = new WebhookSecrets(redis, keys, 'dispatcher-test-master-secret-0123456');
  await secrets.master();
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 5 });
  const logger = createLogger('worker', 'silent');
  const deps: AttemptDeps = { log, secrets, limiter, batcher, sender, queue, logger, retryScale: 0.001 };
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const worker = createDeliveryWorker(deps, { connection, prefix, concurrency: 5, timeoutMs: 2000, batches: new BatchStore(redis, keys) });
  const reader = new Redis(url, { maxRetriesPerRequest: null });
  // the entry left pending by the failed call is claimed again once idle for 600 ms
  const dispatcher = new OutboxDispatcher(reader, redis, keys, queue, log, logger, { consumer: 'dispatcher-test', claimIdleMs: 600, startDelayMs: 0, filesBaseUrl: () => 'http://files.test', blockMs: 200, inlineConcurrency: 5 }, deps);
  try {
    dispatcher.start();
    const rows = await until(async () => {
      const list = await log.list(record.id, 'td');
      return list.some((r) => r.state === 'delivered') ? list : undefined;
    }, 15_000);
    expect(batcher.failures).toBeGreaterThanOrEqual(1);
    expect(received).toHaveLength(1);
    // one request, one row: the failed call's slot request sent nothing and left no mark behind
    expect(rows.map((r) => [r.attempt, r.state, r.status, r.error])).toEqual([[1, 'delivered', 200, undefined]]);
    expect(rows[0]!.webhookId).toBe(received[0]);
    expect(await redis.zcard(keys.webhookHostInFlight(`127.0.0.1:${port}`))).toBe(0);
  } finally {
    await dispatcher.stop();
    await worker.close();
    await Promise.all([sender.close(), connection.quit(), reader.quit().catch(() => undefined)]);
  }
});
