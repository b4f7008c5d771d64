import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, QUEUES } from '@imagegen/shared';
import { createApp } from '../app';
import { loadApiConfig } from '../config';
import { createApiContext, type ApiContext } from '../context';
import { closedPort } from '../__tests__/closed-port';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-board-${process.pid}-${randomBytes(4).toString('hex')}`;
const operator = { Authorization: `Basic ${Buffer.from('ops:board-test-password').toString('base64')}` };

describe('Bull Board when Redis goes during a request', () => {
  let ctx: ApiContext;
  let gone: Redis;
  let queue: Queue;
  let server: import('node:http').Server;
  let base: string;

  beforeAll(async () => {
    const config = loadApiConfig({ REDIS_URL, QUEUE_PREFIX: prefix, ADMIN_USER: 'ops', ADMIN_PASSWORD: 'board-test-password', LOG_LEVEL: 'silent' });
    ctx = createApiContext(config, 'board-test-password', createLogger('api', 'silent'));
    if (ctx.redis.status !== 'ready') await new Promise((r) => ctx.redis.once('ready', r));
    // the API's own connection answers (so `redisReady` lets the request through) while the
    // board's queue has lost Redis: the moment between the two that a real outage passes through
    gone = new Redis({ port: await closedPort(), host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
    gone.on('error', () => undefined);
    queue = new Queue(QUEUES.generate, { connection: gone, prefix });
    queue.on('error', () => undefined);
    const app = createApp({ ...ctx, queues: { ...ctx.queues, generate: queue } });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    // a queue whose connection never came up has nothing to flush: closing it would wait for good
    await queue?.disconnect().catch(() => undefined);
    gone?.disconnect();
    const keys = await ctx.redis.keys(`${prefix}:*`);
    if (keys.length) await ctx.redis.del(...keys);
    await ctx.close();
  });

  it('answers the API 503 problem, not the board 500', async () => {
    const res = await fetch(`${base}/admin/queues/api/queues`, { headers: operator, signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status?: number };
    expect({ status: res.status, type: res.headers.get('content-type'), problem: body.status, retryAfter: res.headers.get('retry-after') }).toEqual({
      status: 503,
      type: expect.stringMatching(/^application\/problem\+json/),
      problem: 503,
      retryAfter: '5',
    });
    expect(JSON.stringify(body)).not.toMatch(/at .*\.js:\d+/);
  });

  it('other board errors keep their status and the board own members, as problem+json, and never a stack', async () => {
    const answer = async (res: Response) => ({ status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> });
    const missingQueue = await answer(await fetch(`${base}/admin/queues/api/queues/no-such-queue/x`, { headers: operator }));
    expect(missingQueue).toMatchObject({ status: 404, type: expect.stringMatching(/^application\/problem\+json/), body: { status: 404, title: 'Not Found', error: { key: 'ERRORS.QUEUE_NOT_FOUND' } } });
    expect(missingQueue.body.detail).toBe('Queue not found');
    const missingJob = await answer(await fetch(`${base}/admin/queues/api/queues/${QUEUES.maintenance}/nope/retry`, { method: 'PUT', headers: operator }));
    expect(missingJob).toMatchObject({ status: 404, type: expect.stringMatching(/^application\/problem\+json/), body: { status: 404, type: expect.stringContaining('not-found'), error: { key: 'ERRORS.JOB_NOT_FOUND' } } });
    // a body the board cannot parse; in development its handler would add the stack
    const env = process.env.NODE_ENV;
    process.env.NODE_ENV = 'development';
    try {
      const malformed = await answer(await fetch(`${base}/admin/queues/api/queues/${QUEUES.maintenance}/add`, { method: 'POST', headers: { ...operator, 'Content-Type': 'application/json' }, body: '{bad' }));
      expect(malformed).toMatchObject({ status: 400, type: expect.stringMatching(/^application\/problem\+json/), body: { status: 400, title: 'Bad Request', detail: expect.any(String) } });
      expect(malformed.body).not.toHaveProperty('details');
      expect(JSON.stringify(malformed.body)).not.toMatch(/at .*\.js:\d+/);
    } finally {
      process.env.NODE_ENV = env;
    }
  });
});
