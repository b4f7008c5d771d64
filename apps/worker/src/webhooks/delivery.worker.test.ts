import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { attemptsInRun, BatchStore, createLogger, DeliveryLog, keysFor, OUTBOX_GROUP, QUEUES, redisTimeMs, UNFINISHED_ATTEMPT_ERROR, WebhookSecrets, webhookJobOptions, WEBHOOK_JOBS, WEBHOOK_MAX_ATTEMPTS, type Delivery } from '@imagegen/shared';
import { AttemptBatcher, type AttemptToSettle, type Settled } from './attempt-batcher';
import type { AttemptDeps } from './attempt';
import { createDeliveryWorker, MAX_UNSETTLED, unsettledDelayMs } from './delivery.worker';
import { until } from '../__tests__/until';
import { HostLimiter } from './host-limiter';
import { WebhookSender } from './sender';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-dlvworker-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let queue: Queue;
let events: QueueEvents;
let receiver: http.Server;
let port: number;
/** webhook-id of every request the receiver got. */
const received: string[] = [];

beforeAll(async () => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUES.webhooks, { connection: redis, prefix });
  events = new QueueEvents(QUEUES.webhooks, { connection: { url }, prefix });
  await events.waitUntilReady();
  receiver = http.createServer((req, res) => {
    received.push(String(req.headers['webhook-id']));
    req.resume();
    // /slow answers 200 after 1.3 s: past the moment an attempt lets go of its job
    req.on('end', () => setTimeout(() => res.writeHead(req.url === '/fail' ? 500 : 200).end(), req.url === '/slow' ? 1300 : 0));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  port = (receiver.address() as AddressInfo).port;
});
afterAll(async () => {
  receiver.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

/** An endpoint that takes requests and never answers, until stopped (then it refuses connections). */
async function hangingServer(): Promise<{ port: number; requests(): number; stop(): void }> {
  let requests = 0;
  const server = http.createServer(() => requests++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    stop() {
      server.close();
      server.closeAllConnections();
    },
  };
}

/**
 * A batcher whose settle fails, as a Redis call cut off would, while `failing()` says so: before
 * the script runs, or (replyLost) after it ran.
 */
class FailingSettle extends AttemptBatcher {
  failing: () => boolean = () => false;
  replyLost = false;
  override async settle(attempt: AttemptToSettle): Promise<Settled> {
    if (!this.failing()) return super.settle(attempt);
    if (this.replyLost) await super.settle(attempt);
    throw new Error('Connection is closed.');
  }
}

/** Secrets whose lookup fails, as a Redis call cut off would, while `failing()` says so; `onLookup` runs at each lookup first. */
class FailingSecrets extends WebhookSecrets {
  failing: () => boolean = () => false;
  onLookup: () => void = () => undefined;
  override signing(tenant: string): Promise<string[]> {
    this.onLookup();
    return this.failing() ? Promise.reject(new Error('Connection is closed.')) : super.signing(tenant);
  }
}

interface WorkerOptions {
  /** The signing secrets' lookup fails while this says so. */
  secretsFailing?: () => boolean;
  /** Runs as each attempt looks up its signing secrets (beside marking itself started). */
  onSecretsLookup?: () => void;
  allowPrivate?: boolean;
  replyLost?: boolean;
  retryScale?: number;
  timeoutMs?: number;
  stalled?: { stalledIntervalMs: number; maxStalledCount: number };
  concurrency?: number;
}

/** A delivery worker (5 jobs at once, 5 in flight per host) over real Redis and BullMQ. */
async function startWorker(failing: () => boolean, { secretsFailing = () => false, onSecretsLookup = () => undefined, allowPrivate = true, replyLost = false, retryScale = 0.001, timeoutMs = 2000, stalled = undefined, concurrency = 5 }: WorkerOptions = {}): Promise<{ worker: Worker; close(): Promise<void> }> {
  const log = new DeliveryLog(redis, keys, 3600);
  const limiter = new HostLimiter(redis, keys, { maxInFlight: 5, leaseMs: 10_000, circuitFailures: 100, circuitOpenMs: 1000 });
  const batcher = new FailingSettle(redis, keys, log, limiter, OUTBOX_GROUP);
  batcher.failing = failing;
  batcher.replyLost = replyLost;
  const secrets = new FailingSecrets(redis, keys, 'delivery-worker-test-master-secret-0123');
  await secrets.master();
  secrets.failing = secretsFailing;
  secrets.onLookup = onSecretsLookup;
  const sender = new WebhookSender({ timeoutMs, allowPrivate, connectionsPerOrigin: 5 });
  const deps: AttemptDeps = { log, secrets, limiter, batcher, sender, queue, logger: createLogger('worker', 'silent'), retryScale };
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const worker: Worker = createDeliveryWorker(deps, { connection, prefix, concurrency, timeoutMs, batches: new BatchStore(redis, keys), ...stalled });
  return {
    worker,
    async close() {
      await worker.close();
      await Promise.all([sender.close(), connection.quit()]);
    },
  };
}

/** A delivery in the log whose job has `left` attempts of the schedule left (by default its last). */
async function lastAttemptLeft(n: string, left = 1, target = `http://127.0.0.1:${port}/hook`, fields: Partial<Delivery> = {}): Promise<Delivery> {
  const delivery: Delivery = {
    id: `dlv_w${n}`,
    event: 'generation.completed',
    webhookId: `msg_w${n}`,
    url: target,
    tenant: 'tw',
    subject: `gen_w${n}`,
    createdAt: Date.now(),
    state: 'pending',
    run: 0,
    attempts: WEBHOOK_MAX_ATTEMPTS - left,
    runAttempts: WEBHOOK_MAX_ATTEMPTS - left,
    runAttemptsOf: 0,
    ...fields,
  };
  await new DeliveryLog(redis, keys, 3600).createMany([{ delivery, body: '{"type":"generation.completed"}' }]);
  const before = WEBHOOK_MAX_ATTEMPTS - left;
  const data = { deliveryId: delivery.id, subject: delivery.subject, tenant: delivery.tenant, host: new URL(target).host, run: 0, attemptsBefore: before };
  const job = await queue.add(WEBHOOK_JOBS.deliver.name, data, webhookJobOptions(delivery.id, 0, before));
  expect(job.opts.attempts).toBe(left);
  return delivery;
}

it('the last attempt whose recording fails is made again, without using a step of the schedule, and the delivery ends delivered', async () => {
  let failures = 2;
  const worker = await startWorker(() => failures-- > 0);
  try {
    const d = await lastAttemptLeft('1');
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'delivered', status: 200 });
    const log = new DeliveryLog(redis, keys, 3600);
    const logged = (await log.load(d.subject, d.id))!.delivery;
    // sent three times (the first two went out, then could not be recorded), always under one webhook-id
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(3);
    // each in the log, the two cut short as such; only the one recorded used a step of the schedule
    expect(logged).toMatchObject({ state: 'delivered', attempts: WEBHOOK_MAX_ATTEMPTS + 2 });
    expect(attemptsInRun(logged)).toBe(WEBHOOK_MAX_ATTEMPTS);
    expect((await log.list(d.subject, 'tw')).map((r) => [r.attempt, r.state, r.error])).toEqual([
      [WEBHOOK_MAX_ATTEMPTS, 'failed', UNFINISHED_ATTEMPT_ERROR],
      [WEBHOOK_MAX_ATTEMPTS + 1, 'failed', UNFINISHED_ATTEMPT_ERROR],
      [WEBHOOK_MAX_ATTEMPTS + 2, 'delivered', undefined],
    ]);
  } finally {
    await worker.close();
  }
});

it('a delivery whose attempts can never be recorded ends exhausted, saying why, rather than staying pending', async () => {
  const worker = await startWorker(() => true);
  try {
    const d = await lastAttemptLeft('2');
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'exhausted' });
    const log = new DeliveryLog(redis, keys, 3600);
    expect((await log.load(d.subject, d.id))?.delivery).toMatchObject({ state: 'exhausted' });
    const rows = await log.list(d.subject, 'tw');
    expect(rows.at(-1)).toMatchObject({ state: 'exhausted', error: `not settled after ${MAX_UNSETTLED + 1} tries: Connection is closed.` });
    // an ended delivery can be found by a recovery
    expect(await redis.zscore(log.endedKeyOf('tw'), `${d.subject}|${d.id}`)).not.toBeNull();
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(MAX_UNSETTLED + 1);
  } finally {
    await worker.close();
  }
});

it('an answer recorded whose reply was lost is not recorded again: the delivery stays delivered, sent once', async () => {
  let failures = 1;
  const worker = await startWorker(() => failures-- > 0, { replyLost: true });
  try {
    const d = await lastAttemptLeft('4');
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'delivered' });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    expect(rows.map((r) => r.state)).toEqual(['delivered']);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(1);
  } finally {
    await worker.close();
  }
});

it('a failed answer recorded whose reply was lost is not sent again: the job goes on to the next attempt when the log says', async () => {
  let failures = 1;
  const worker = await startWorker(() => failures-- > 0, { replyLost: true, retryScale: 0.00001 });
  try {
    const d = await lastAttemptLeft('4f', 3, `http://127.0.0.1:${port}/fail`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'exhausted', status: 500 });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    // before: the attempt whose reply was lost was sent and logged twice (4 rows, 4 requests)
    expect(rows.map((r) => [r.attempt, r.state])).toEqual([
      [WEBHOOK_MAX_ATTEMPTS - 2, 'failed'],
      [WEBHOOK_MAX_ATTEMPTS - 1, 'failed'],
      [WEBHOOK_MAX_ATTEMPTS, 'exhausted'],
    ]);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(3);
    // the next attempt waited for the time the log gave it
    expect(Date.parse(rows[1]!.at)).toBeGreaterThanOrEqual(Date.parse(rows[0]!.nextAttemptAt!) - 50);
  } finally {
    await worker.close();
  }
});

it('an attempt whose worker died mid-request is logged, cut short, when the job makes it again; the schedule goes on from the attempts recorded', async () => {
  const worker = await startWorker(() => false);
  try {
    const d = await lastAttemptLeft('cut', 2);
    const log = new DeliveryLog(redis, keys, 3600);
    // what a worker that died mid-request leaves: its attempt marked started, never recorded
    await redis.hset(log.keyOf(d.subject), `s:${d.id}`, `0|${Date.now() - 5000}|${d.id}:dead-token`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'delivered', status: 200 });
    const rows = await log.list(d.subject, 'tw');
    expect(rows.map((r) => [r.attempt, r.state, r.error])).toEqual([
      [WEBHOOK_MAX_ATTEMPTS - 1, 'failed', UNFINISHED_ATTEMPT_ERROR],
      [WEBHOOK_MAX_ATTEMPTS, 'delivered', undefined],
    ]);
    expect(Date.now() - Date.parse(rows[0]!.at)).toBeGreaterThanOrEqual(5000);
    expect(attemptsInRun((await log.load(d.subject, d.id))!.delivery)).toBe(WEBHOOK_MAX_ATTEMPTS - 1);
    expect(await redis.hexists(log.keyOf(d.subject), `s:${d.id}`)).toBe(0);
  } finally {
    await worker.close();
  }
});

it('an attempt that sends nothing (its signing secrets could not be read) is not logged as cut short when the next one starts', async () => {
  let failures = 1;
  const worker = await startWorker(() => false, { secretsFailing: () => failures-- > 0 });
  try {
    const d = await lastAttemptLeft('nosend', 2);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'delivered', status: 200 });
    expect(failures).toBeLessThan(0);
    // before: a row saying the endpoint may have received an attempt that never went out
    expect((await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw')).map((r) => [r.attempt, r.state])).toEqual([[WEBHOOK_MAX_ATTEMPTS - 1, 'delivered']]);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(1);
  } finally {
    await worker.close();
  }
});

it('a delivery that ends between the job reading it and its attempt starting is not sent', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  let ended: Promise<unknown> | undefined;
  const d = { id: 'dlv_wraced', subject: 'gen_wraced', tenant: 'tw' };
  // ended by another process (as a worker that gave up on it would) the moment this attempt starts: on the
  // same connection as the attempt's mark, and sent before it
  const worker = await startWorker(() => false, { onSecretsLookup: () => (ended ??= log.recordAttempt(d, { run: 0, state: 'exhausted', error: 'ended elsewhere', durationMs: 0 })) });
  try {
    await lastAttemptLeft('raced', 2);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'stale' });
    expect(ended).toBeDefined();
    // before: sent anyway, its record then refused
    expect(received.filter((id) => id === 'msg_wraced')).toHaveLength(0);
    expect((await log.list(d.subject, 'tw')).map((r) => [r.state, r.error])).toEqual([['exhausted', 'ended elsewhere']]);
  } finally {
    await worker.close();
  }
});

it('each attempt of a job is recorded, though BullMQ hands the job back to the same slot under the same token', async () => {
  // one job slot kept busy: it takes each next job as it lets go of one, under the same token, and so
  // takes the job back for its retry with the token of its first attempt
  const tokens: string[] = [];
  const worker = await startWorker(() => false, { concurrency: 1, retryScale: 0.00001 });
  try {
    const d = await lastAttemptLeft('token', 2, `http://127.0.0.1:${port}/fail`);
    worker.worker.on('active', (job) => {
      if (job.id === d.id) tokens.push(String(job.token));
    });
    for (let i = 0; i < 150; i++) await lastAttemptLeft(`filler${i}`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'exhausted', status: 500 });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    // before: its second attempt sent but not recorded (taken for the first recorded again), the delivery left pending
    expect(rows.map((r) => [r.attempt, r.state])).toEqual([
      [WEBHOOK_MAX_ATTEMPTS - 1, 'failed'],
      [WEBHOOK_MAX_ATTEMPTS, 'exhausted'],
    ]);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(2);
    // the case this is about did happen (on a loaded machine an attempt slower than 1 s lets go of
    // the job, which then comes back once more)
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    expect(tokens.some((t, i) => i > 0 && t === tokens[i - 1])).toBe(true);
  } finally {
    await worker.close();
  }
});

it('a job that runs before the time the log gives its attempt waits for it, rather than send early', async () => {
  const worker = await startWorker(() => false);
  try {
    const due = Date.now() + 2500;
    const d = await lastAttemptLeft('early', 2, undefined, { nextAttemptAt: due });
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'delivered', status: 200 });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    // before: sent at once, 2.5 s early
    expect(rows.map((r) => r.state)).toEqual(['delivered']);
    expect(Date.parse(rows[0]!.at)).toBeGreaterThanOrEqual(due - 50);
  } finally {
    await worker.close();
  }
});

it('a job run less than a second early (a worker whose clock runs ahead of Redis) waits for its attempt too: due times are compared by Redis time', async () => {
  const worker = await startWorker(() => false);
  try {
    const due = (await redisTimeMs(redis)) + 600;
    const d = await lastAttemptLeft('early2', 2, undefined, { nextAttemptAt: due });
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'delivered', status: 200 });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    // before: sent at once, 600 ms early (the worker's clock said it was due within a second)
    expect(rows.map((r) => r.state)).toEqual(['delivered']);
    expect(Date.parse(rows[0]!.at)).toBeGreaterThanOrEqual(due);
  } finally {
    await worker.close();
  }
});

it('tries that failed on our side are counted per attempt: each step of the schedule has its own allowance', async () => {
  // every settle fails six times before one goes through: within the allowance of each attempt, not of the two together
  let calls = 0;
  const worker = await startWorker(() => ++calls % 7 !== 0, { retryScale: 0.00001 });
  try {
    const d = await lastAttemptLeft('5', 2, `http://127.0.0.1:${port}/fail`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'exhausted', status: 500 });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    // every request sent is in the log: the six of each attempt whose answer could not be recorded, cut short
    const cutShort = Array.from({ length: 6 }, () => ['failed', UNFINISHED_ATTEMPT_ERROR]);
    expect(rows.map((r) => [r.state, r.error])).toEqual([...cutShort, ['failed', 'answered 500'], ...cutShort, ['exhausted', 'answered 500']]);
    expect(calls).toBe(14);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(14);
  } finally {
    await worker.close();
  }
});

it('a target the SSRF guard refuses when sending (its name now resolves to loopback) fails at once: no retry can change that', async () => {
  const worker = await startWorker(() => false, { allowPrivate: false });
  try {
    const before = received.length;
    const d = await lastAttemptLeft('3', WEBHOOK_MAX_ATTEMPTS, `http://localhost:${port}/hook`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'failed' });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'failed', error: expect.stringMatching(/loopback/) });
    expect(rows[0]?.nextAttemptAt).toBeUndefined();
    expect(received.length).toBe(before);
  } finally {
    await worker.close();
  }
});

it('jobs whose endpoints hang let go of their job slots after 1 s: other endpoints are not held up until the timeout', async () => {
  // three endpoints that never answer, five deliveries each (each host's bound), queued first, all as jobs
  const hanging = await Promise.all([1, 2, 3].map(() => hangingServer()));
  const worker = await startWorker(() => false, { timeoutMs: 20_000 });
  try {
    const stuck: Delivery[] = [];
    for (const [h, server] of hanging.entries()) {
      for (let i = 0; i < 5; i++) stuck.push(await lastAttemptLeft(`h${h}x${i}`, WEBHOOK_MAX_ATTEMPTS, `http://127.0.0.1:${server.port}/hook`));
    }
    const healthy: Delivery[] = [];
    for (let i = 0; i < 20; i++) healthy.push(await lastAttemptLeft(`ok${i}`, WEBHOOK_MAX_ATTEMPTS));
    const log = new DeliveryLog(redis, keys, 3600);
    // every healthy delivery arrives while the hanging ones still wait for their 20 s timeout
    // (before: the five job slots held by hanging requests for those 20 s)
    await until(async () => {
      const states = await Promise.all(healthy.map(async (d) => (await log.load(d.subject, d.id))?.delivery.state));
      return states.every((st) => st === 'delivered') || undefined;
    }, 10_000);
    expect(hanging.reduce((n, server) => n + server.requests(), 0)).toBe(15);
    expect(received.filter((id) => healthy.some((d) => d.webhookId === id))).toHaveLength(20);

    // the hanging endpoints go away: each attempt that let go is recorded, and its job moves on to the next step
    for (const server of hanging) server.stop();
    const first = stuck[0]!;
    const tried = await until(async () => (await log.list(first.subject, 'tw')).find((row) => row.attempt === 1), 10_000);
    expect(tried).toMatchObject({ error: expect.stringMatching(/connection failed/), nextAttemptAt: expect.any(String) });
    expect(await until(async () => ((await queue.getJob(first.id))?.data.attemptsBefore >= 1 ? true : undefined), 10_000)).toBe(true);
  } finally {
    for (const server of hanging) server.stop();
    await worker.close();
  }
});

it('a slow attempt that let go of its job and then is answered 2xx completes its job as delivered', async () => {
  const worker = await startWorker(() => false);
  try {
    const d = await lastAttemptLeft('s1', WEBHOOK_MAX_ATTEMPTS, `http://127.0.0.1:${port}/slow`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 20_000)).toEqual({ outcome: 'delivered' });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    expect(rows.map((r) => [r.attempt, r.state, r.status])).toEqual([[1, 'delivered', 200]]);
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(1);
  } finally {
    await worker.close();
  }
});

it('closing the worker waits for an attempt that let go of its job, and records it', async () => {
  const worker = await startWorker(() => false);
  const d = await lastAttemptLeft('s3', WEBHOOK_MAX_ATTEMPTS, `http://127.0.0.1:${port}/slow`);
  // the attempt has let go once its job is back in the delayed set, the request still under way
  await until(async () => ((await queue.getJob(d.id))?.getState().then((st) => (st === 'delayed' ? true : undefined)) ?? undefined), 10_000);
  expect(received.filter((id) => id === d.webhookId)).toHaveLength(1);
  expect((await new DeliveryLog(redis, keys, 3600).load(d.subject, d.id))?.delivery.state).toBe('pending');
  // the BullMQ worker alone (the sender, which would wait for its requests too, stays open)
  await worker.worker.close();
  expect((await new DeliveryLog(redis, keys, 3600).load(d.subject, d.id))?.delivery.state).toBe('delivered');
  await worker.close();
});

it('a job run early while its attempt that let go is still under way (a late wake) does not send that attempt again', async () => {
  // an endpoint that holds every request until told to answer
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    held.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const worker = await startWorker(() => false, { timeoutMs: 10_000 });
  try {
    const d = await lastAttemptLeft('lw', WEBHOOK_MAX_ATTEMPTS, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
    const job = (await queue.getJob(d.id))!;
    await until(async () => ((await job.getState()) === 'delayed' && held.length === 1 ? true : undefined), 10_000);
    // what a wake for a host slot, popped while the job was parked and acted on late, does
    await job.promote();
    await until(async () => ((await job.getState()) === 'delayed' ? true : undefined), 5_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // before: the job ran the same attempt again, a second request under the same webhook-id
    expect(held.length).toBe(1);
    held[0]!.writeHead(200).end();
    expect(await job.waitUntilFinished(events, 10_000)).toEqual({ outcome: 'delivered' });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    expect(rows.map((r) => [r.attempt, r.state])).toEqual([[1, 'delivered']]);
    expect(held.length).toBe(1);
  } finally {
    await worker.close();
    server.closeAllConnections();
    server.close();
  }
});

it('slow attempts that let go of their job and can never be recorded still end the delivery exhausted', async () => {
  const worker = await startWorker(() => true, { timeoutMs: 5000 });
  try {
    const d = await lastAttemptLeft('s2', WEBHOOK_MAX_ATTEMPTS, `http://127.0.0.1:${port}/slow`);
    const job = (await queue.getJob(d.id))!;
    expect(await job.waitUntilFinished(events, 30_000)).toEqual({ outcome: 'exhausted' });
    const rows = await new DeliveryLog(redis, keys, 3600).list(d.subject, 'tw');
    expect(rows.at(-1)).toMatchObject({ state: 'exhausted', error: `not settled after ${MAX_UNSETTLED + 1} tries: Connection is closed.` });
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(MAX_UNSETTLED + 1);
  } finally {
    await worker.close();
  }
}, 40_000);

it('hands its stalled-job settings (WORKER_STALLED_INTERVAL_MS, WORKER_MAX_STALLED_COUNT in the runtime) on to BullMQ', async () => {
  const worker = await startWorker(() => false, { stalled: { stalledIntervalMs: 700, maxStalledCount: 3 } });
  try {
    expect(worker.worker.opts).toMatchObject({ stalledInterval: 700, maxStalledCount: 3, lockDuration: 30_000 });
  } finally {
    await worker.close();
  }
});

it('a delivery whose job BullMQ fails for stalling too often ends exhausted, saying why, rather than staying pending', async () => {
  const d = await lastAttemptLeft('st', 3);
  // a worker that takes the job and dies, twice: a bare BullMQ worker fetching by hand and never renewing its lock
  const dying = new Worker(QUEUES.webhooks, null, { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix, lockDuration: 200, stalledInterval: 300, maxStalledCount: 1 });
  let job: Job | undefined;
  try {
    for (let death = 1; death <= 2; death++) {
      expect((await dying.getNextJob(`dead-${death}`))?.id).toBe(d.id);
      // taken back once the lock has gone, on the stalled checker's second look
      job = await until(async () => {
        // the earlier tests' workers (30 s stalled interval) hold the check off until their mark expires
        await redis.del(`${prefix}:${QUEUES.webhooks}:stalled-check`);
        await dying.startStalledCheckTimer().catch(() => undefined);
        const found = (await queue.getJob(d.id))!;
        return found.stalledCounter === death && (await found.getState()) === 'waiting' ? found : undefined;
      }, 10_000);
    }
  } finally {
    await dying.close();
    await (dying.opts.connection as Redis).quit();
  }
  expect(job?.deferredFailure).toBe('job stalled more than allowable limit');
  // before: the job failed, and the log said pending for good
  const worker = await startWorker(() => false);
  try {
    const failed = await until(async () => ((await (await queue.getJob(d.id))!.getState()) === 'failed' ? true : undefined), 10_000);
    expect(failed).toBe(true);
    const log = new DeliveryLog(redis, keys, 3600);
    expect((await log.load(d.subject, d.id))?.delivery).toMatchObject({ state: 'exhausted' });
    const rows = await log.list(d.subject, 'tw');
    expect(rows.at(-1)).toMatchObject({ state: 'exhausted', error: `attempt ${WEBHOOK_MAX_ATTEMPTS - 2} not finished: its job was taken back from stopped workers 2 times` });
    expect(await redis.zscore(log.endedKeyOf('tw'), `${d.subject}|${d.id}`)).not.toBeNull();
    // nothing was sent: the dead workers never sent it, and the job failed without running
    expect(received.filter((id) => id === d.webhookId)).toHaveLength(0);
  } finally {
    await worker.close();
  }
}, 30_000);

it('waits 1 s doubling to a minute between tries of a step that failed on our side, scaled like the schedule', () => {
  expect([1, 2, 3, 7, 8].map((n) => unsettledDelayMs(n, 1))).toEqual([1000, 2000, 4000, 60_000, 60_000]);
  expect(unsettledDelayMs(3, 0.5)).toBe(2000);
  expect(unsettledDelayMs(1, 0.001)).toBe(10);
});
