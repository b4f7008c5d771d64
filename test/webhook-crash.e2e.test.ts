import { Redis } from 'ioredis';
import { deliveryIdFor, keysFor, UNFINISHED_ATTEMPT_ERROR, webhookIdFor, type Delivery, type GenerationRecord } from '@imagegen/shared';
import { generationRecord, TINY_RESULT } from './support/records';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnWorker } from './support/processes';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * The outbox survives crashes: an event recorded with the record change is delivered even when the
 * worker that made the change dies before dispatching it, or dies after reading it from the outbox
 * but before handing it on. A receiver answering 200 gets it exactly once.
 */
const GROUP = 'dispatchers';

describe('webhooks survive a worker crash', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;
  let sub: Redis;
  let secret: string;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack({ name: 'webhook-crash', worker: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_DISPATCH_CLAIM_IDLE_MS: '500' } });
    secret = (await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret;
    receiver.secrets = [secret];
    sub = new Redis(stack.env.REDIS_URL!);
  });
  afterAll(async () => {
    await killAllSpawned();
    await sub?.quit().catch(() => undefined);
    await stack?.close();
    await receiver?.close();
  });

  /** A generation written as active, with a webhook to `path` of the receiver. */
  const activeRecord = async (topic: string, path: string): Promise<GenerationRecord> => {
    const r = generationRecord({ request: { topic, style: 'PHOTOGRAPHIC', size: 'SQUARE' }, webhook: { url: receiver.url(path) } });
    await stack.api.store.create(r);
    return r;
  };

  const outboxEntriesFor = async (id: string) =>
    ((await stack.redis.xrange(keysFor(stack.prefix).webhookOutbox(), '-', '+')) as [string, string[]][]).filter(([, f]) => f[f.indexOf('gen') + 1] === id);

  it('a worker SIGKILLed the moment the record turns completed: a second worker delivers the event once', async () => {
    const env = { ...stack.env, LOG_LEVEL: 'info' };
    // this worker completes generations but has not begun dispatching when it is killed
    const first = await spawnWorker({ env: { ...env, WEBHOOK_DISPATCH_START_DELAY_MS: '600000' }, name: 'worker-1' });
    let killedAt = 0;
    let target = '';
    sub.on('pmessage', (_p: string, channel: string, message: string) => {
      if (target && channel.endsWith(target) && (JSON.parse(message) as { type: string }).type === 'generation.completed' && !killedAt) {
        first.child.kill('SIGKILL');
        killedAt = Date.now();
      }
    });
    await sub.psubscribe(keysFor(stack.prefix).generationChannel('*'));

    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'crash hook', webhook: { url: receiver.url('/crash') } });
    expect(created.status).toBe(202);
    target = created.body.id;
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThan(0);

    // the record is completed, its event waits in the outbox, and nothing went out
    const record = (await getJson(`${stack.baseUrl}/v1/generations/${target}`)).body;
    expect(record.status).toBe('completed');
    expect(await outboxEntriesFor(target)).toHaveLength(1);
    await sleep(300);
    expect(receiver.on('/crash')).toHaveLength(0);

    await spawnWorker({ env, name: 'worker-2' });
    await eventually(async () => (receiver.on('/crash').length ? true : undefined), 30_000);
    await sleep(2000);
    const got = receiver.on('/crash');
    expect(got).toHaveLength(1);
    expect(got[0]!.verifiedWith).toEqual([0]);
    expect(got[0]!.payload).toMatchObject({ type: 'generation.completed', data: record });
    expect(await outboxEntriesFor(target)).toHaveLength(0);
    const rows = (await getJson(`${stack.baseUrl}/v1/generations/${target}/deliveries`)).body.data;
    expect(rows).toEqual([expect.objectContaining({ attempt: 1, status: 200, state: 'delivered', webhookId: got[0]!.headers['webhook-id'] })]);
    await killAllSpawned();
  });

  it('an event read by a dispatcher that then died is taken over from its pending list and delivered once', async () => {
    const keys = keysFor(stack.prefix);
    const r = await activeRecord('pending entry', '/claimed');
    await stack.redis.xgroup('CREATE', keys.webhookOutbox(), GROUP, '0', 'MKSTREAM').catch(() => undefined);
    await stack.api.store.complete(r, TINY_RESULT);
    // a dispatcher reads the entry into its pending list, then dies without acknowledging it
    const read = (await stack.redis.xreadgroup('GROUP', GROUP, 'dead-dispatcher', 'COUNT', 100, 'STREAMS', keys.webhookOutbox(), '>')) as [string, [string, string[]][]][];
    expect(read[0]![1].some(([, f]) => f.includes(r.id))).toBe(true);
    const pendingBefore = (await stack.redis.xpending(keys.webhookOutbox(), GROUP)) as [number, ...unknown[]];
    expect(pendingBefore[0]).toBeGreaterThanOrEqual(1);

    const worker = await stack.startWorker();
    await eventually(async () => (receiver.on('/claimed').length ? true : undefined), 30_000);
    await sleep(1500);
    expect(receiver.on('/claimed')).toHaveLength(1);
    expect(receiver.on('/claimed')[0]!.verifiedWith).toEqual([0]);
    const pendingAfter = (await stack.redis.xpending(keys.webhookOutbox(), GROUP)) as [number, ...unknown[]];
    expect(pendingAfter[0]).toBe(0);
    await worker.close();
  });

  it('what a running dispatcher has read is left to it; once it is gone (no presence key, no read for 10 s), it is taken over at once', async () => {
    const keys = keysFor(stack.prefix);
    const r = await activeRecord('presence', '/presence');
    await stack.redis.xgroup('CREATE', keys.webhookOutbox(), GROUP, '0', 'MKSTREAM').catch(() => undefined);
    // a dispatcher that is (as far as Redis knows) running, and has read the event
    await stack.redis.set(keys.webhookDispatcherAlive('busy-dispatcher'), '1', 'PX', 60_000);
    await stack.api.store.complete(r, TINY_RESULT);
    const read = (await stack.redis.xreadgroup('GROUP', GROUP, 'busy-dispatcher', 'COUNT', 100, 'STREAMS', keys.webhookOutbox(), '>')) as [string, [string, string[]][]][];
    const readAt = Date.now();
    const entry = read[0]![1].find(([, f]) => f.includes(r.id))![0];

    // a worker whose idle-time takeover is far off: only the presence key can hand the entry over
    const worker = await spawnWorker({ env: { ...stack.env, WEBHOOK_DISPATCH_CLAIM_IDLE_MS: '600000', LOG_LEVEL: 'info' }, name: 'worker-3' });
    await sleep(4000);
    expect(receiver.on('/presence')).toHaveLength(0);
    const stillThere = (await stack.redis.xpending(keys.webhookOutbox(), GROUP, '-', '+', 10, 'busy-dispatcher')) as [string, string, number, number][];
    expect(stillThere.map(([id]) => id)).toEqual([entry]);

    // it dies: its key expires (here, deleted) and it reads no more; once it has not read for
    // 10 s (as long as a key lives), the entry is taken over, long before the 600 s claim idle
    await stack.redis.del(keys.webhookDispatcherAlive('busy-dispatcher'));
    await eventually(async () => (receiver.on('/presence').length ? true : undefined), 20_000);
    expect(receiver.on('/presence')[0]!.at - readAt).toBeGreaterThanOrEqual(10_000);
    expect(receiver.on('/presence')[0]!.at - readAt).toBeLessThan(18_000);
    await sleep(1000);
    expect(receiver.on('/presence')).toHaveLength(1);
    expect(receiver.on('/presence')[0]!.verifiedWith).toEqual([0]);
    // the worker's own presence key is there while it runs, and gone after a clean stop
    // (a worker SIGKILLed earlier in this file may still have one, expiring)
    const ownKeys = async () => (await stack.redis.keys(keys.webhookDispatcherAlive('*'))).filter((k) => k.includes(`:${worker.pid}:`));
    const own = await ownKeys();
    expect(own).toHaveLength(1);
    expect(await stack.redis.pttl(own[0]!)).toBeGreaterThan(0);
    await worker.terminate(20_000);
    expect(await ownKeys()).toEqual([]);
  });

  it('a worker SIGKILLed while its first attempt waits for an answer: the next worker delivers, and the log shows the attempt cut short', async () => {
    receiver.script('/cut', 'hang', 200);
    const first = await spawnWorker({ env: { ...stack.env, LOG_LEVEL: 'info' }, name: 'worker-cut' });
    const r = await activeRecord('cut short', '/cut');
    await stack.api.store.complete(r, TINY_RESULT);
    await eventually(async () => (receiver.on('/cut').length ? true : undefined), 15_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const worker = await stack.startWorker();
    await eventually(async () => (receiver.on('/cut').length === 2 ? true : undefined), 20_000);
    const got = receiver.on('/cut');
    expect(got.map((g) => g.answeredWith)).toEqual(['hang', 200]);
    expect(got[1]!.headers['webhook-id']).toBe(got[0]!.headers['webhook-id']);
    const rows = await eventually(async () => {
      const listed = (await getJson(`${stack.baseUrl}/v1/generations/${r.id}/deliveries`)).body.data as { attempt: number; state: string; at: string; status?: number; error?: string }[];
      return listed.at(-1)?.state === 'delivered' ? listed : undefined;
    }, 10_000);
    // before: one row (attempt 1, delivered) for the two requests the receiver got
    expect(rows.map((row) => [row.attempt, row.state, row.status ?? row.error])).toEqual([
      [1, 'failed', UNFINISHED_ATTEMPT_ERROR],
      [2, 'delivered', 200],
    ]);
    // logged from when the cut attempt started: around when the receiver got it
    expect(Math.abs(Date.parse(rows[0]!.at) - got[0]!.at)).toBeLessThan(1000);
    await sleep(1000);
    expect(receiver.on('/cut')).toHaveLength(2);
    await worker.close();
  });

  it('an event held by a running dispatcher longer than the claim idle time (a slow answer) is not taken over and sent again', async () => {
    // answered after 2.5 s, five times the claim idle time here (500 ms); two workers look for abandoned events
    receiver.script('/held', { status: 200, delayMs: 2500 });
    const workers = [await stack.startWorker(), await stack.startWorker()];
    const r = await activeRecord('held', '/held');
    await stack.api.store.complete(r, TINY_RESULT);
    await eventually(async () => (receiver.on('/held').length ? true : undefined), 15_000);
    const rows = await eventually(async () => {
      const listed = (await getJson(`${stack.baseUrl}/v1/generations/${r.id}/deliveries`)).body.data as { attempt: number; state: string }[];
      return listed.at(-1)?.state === 'delivered' ? listed : undefined;
    }, 10_000);
    await sleep(1500);
    // before: taken over while its attempt waited, and sent again at once (2 requests, 2 rows, one of them cut short)
    expect(receiver.on('/held')).toHaveLength(1);
    expect(rows.map((row) => [row.attempt, row.state])).toEqual([[1, 'delivered']]);
    expect(await outboxEntriesFor(r.id)).toHaveLength(0);
    await Promise.all(workers.map((w) => w.close()));
  });

  it('a delivery taken over after some of its attempts goes on with the schedule from the attempts logged', async () => {
    const keys = keysFor(stack.prefix);
    receiver.script('/resumed', 500);
    const r = await activeRecord('resumed', '/resumed');
    await stack.redis.xgroup('CREATE', keys.webhookOutbox(), GROUP, '0', 'MKSTREAM').catch(() => undefined);
    await stack.api.store.complete(r, TINY_RESULT);
    const read = (await stack.redis.xreadgroup('GROUP', GROUP, 'dead-after-attempts', 'COUNT', 100, 'STREAMS', keys.webhookOutbox(), '>')) as [string, [string, string[]][]][];
    const entryId = read[0]![1].find(([, f]) => f.includes(r.id))![0];
    // what the dispatcher that died had done: the delivery logged, 8 of its 9 attempts failed
    const id = deliveryIdFor(entryId);
    const delivery: Delivery = { id, event: 'generation.completed', webhookId: webhookIdFor(id), url: receiver.url('/resumed'), tenant: 'default', subject: r.id, createdAt: Date.now(), state: 'pending', run: 0, attempts: 0 };
    await stack.api.deliveries.createMany([{ delivery, body: '{"type":"generation.completed"}' }]);
    for (let i = 0; i < 8; i++) await stack.api.deliveries.recordAttempt(delivery, { run: 0, state: 'pending', status: 500, durationMs: 1, retryInMs: 1 });

    // taken over (claim idle 500 ms here): one attempt is left, and it is the last
    const worker = await stack.startWorker();
    const rows = await eventually(async () => {
      const got = (await getJson(`${stack.baseUrl}/v1/generations/${r.id}/deliveries`)).body.data as { attempt: number; state: string; status?: number }[];
      return got.length && got.at(-1)!.state !== 'pending' ? got : undefined;
    }, 20_000);
    expect(rows.at(-1)).toMatchObject({ attempt: 9, state: 'exhausted', status: 500 });
    expect(receiver.on('/resumed')).toHaveLength(1);
    await worker.close();
  });
});
