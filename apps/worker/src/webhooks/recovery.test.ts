import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BatchStore, DeliveryLog, keysFor, QUEUES, recoveryJobOptions, WEBHOOK_JOBS, type Delivery, type RecoverWebhooksJobData } from '@imagegen/shared';
import { runRecovery } from './recovery';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-recovery-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let queue: Queue;

beforeAll(() => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUES.webhooks, { connection: redis, prefix });
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

const deps = () => ({ log: new DeliveryLog(redis, keys, 3600), queue, redis, batches: new BatchStore(redis, keys) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const delivery = (n: number, tenant = 'tr'): Delivery => ({
  id: `dlv_r${n}`,
  event: 'generation.completed',
  webhookId: `msg_r${n}`,
  url: 'https://hooks.example/x',
  tenant,
  subject: `gen_r${n}`,
  createdAt: Date.now(),
  state: 'pending',
  run: 0,
  attempts: 0,
});

it('a recovery cut short goes on from where its progress says, and sends each delivery still ended once', async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  const made = [1, 2, 3, 4, 5, 6].map((n) => delivery(n));
  await log.createMany([...made, delivery(7, 'someone-else')].map((d) => ({ delivery: d, body: '{}' })));
  const since = (await redis.time()).map(Number) as [number, number];
  for (const d of [...made, delivery(7, 'someone-else')]) {
    await log.recordAttempt(d, { run: 0, state: d.id === 'dlv_r5' ? 'exhausted' : 'failed', status: 410, durationMs: 1 });
    await sleep(3);
  }
  const endedAt = async (id: string) => Number(await redis.zscore(log.endedKeyOf('tr'), `gen_r${id.slice(5)}|${id}`));
  // delivered since it ended (a single redeliver made meanwhile): looked at, not sent
  await log.redeliver('gen_r6', 'dlv_r6');
  await log.recordAttempt(made[5]!, { run: 1, state: 'delivered', status: 200, durationMs: 1 });
  // started again by a recovery that died before it queued the job: queued now, not counted again
  const stuck = delivery(8);
  await log.createMany([{ delivery: stuck, body: '{}' }]);
  await log.recordAttempt(stuck, { run: 0, state: 'failed', status: 410, durationMs: 1 });
  await log.redeliver('gen_r8', 'dlv_r8');

  const data: RecoverWebhooksJobData = { tenant: 'tr', since: since[0] * 1000, until: Date.now() + 1000, states: ['failed', 'exhausted'], createdAt: Date.now() };
  const job = await queue.add(WEBHOOK_JOBS.recover.name, data, recoveryJobOptions('rcv_test1'));
  // the first run got through the first two and died before it went on (they are left as they are here, so a run that read them again would send them)
  await job.updateProgress({ scanned: 2, redelivered: 2, through: await endedAt('dlv_r2') });

  const result = await runRecovery(job, deps());
  expect(result).toMatchObject({ scanned: 7, redelivered: 5, through: await endedAt('dlv_r8') });
  expect(result.finishedAt).toBeGreaterThan(data.createdAt - 1000);
  const jobs = await queue.getJobs(['waiting', 'prioritized', 'delayed']);
  const sent = jobs.filter((j) => j.name === WEBHOOK_JOBS.deliver.name).map((j) => j.data.deliveryId as string);
  expect(sent.sort()).toEqual(['dlv_r3', 'dlv_r4', 'dlv_r5', 'dlv_r8']);
  expect(jobs.find((j) => j.data.deliveryId === 'dlv_r8')).toMatchObject({ id: 'dlv_r8-r1', data: { run: 1 } });
  for (const id of sent) expect((await log.load(`gen_r${id.slice(5)}`, id))?.delivery).toMatchObject({ run: 1, state: 'pending' });
  expect((await log.load('gen_r7', 'dlv_r7'))?.delivery).toMatchObject({ run: 0, state: 'failed' });

  // a second recovery of the same window: what the first sent is under way, so only the two it skipped go
  const again = await runRecovery(await queue.add(WEBHOOK_JOBS.recover.name, data, recoveryJobOptions('rcv_test2')), deps());
  expect(again).toMatchObject({ scanned: 7, redelivered: 2 });
  // the runs it found under way keep their one job each; the two it sent have theirs
  const delivers = (await queue.getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.name === WEBHOOK_JOBS.deliver.name);
  expect(delivers.map((j) => j.id).sort()).toEqual(['dlv_r1-r1', 'dlv_r2-r1', 'dlv_r3-r1', 'dlv_r4-r1', 'dlv_r5-r1', 'dlv_r8-r1']);
});

it("a batch's redelivery sends its items' deliveries in the asked states, then its own, and goes on from the items it had read", async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  const batchId = 'batch_rt1';
  const item = (n: number, tenant = 'tb'): Delivery => ({ ...delivery(n, tenant), id: `dlv_b${n}`, webhookId: `msg_b${n}`, subject: `gen_b${n}` });
  const own: Delivery = { ...delivery(0, 'tb'), id: 'dlv_b0', webhookId: 'msg_b0', event: 'batch.completed', subject: batchId };
  // items in submission order: gen_b1 .. gen_b6
  await redis.rpush(keys.batchItems(batchId), ...[1, 2, 3, 4, 5, 6].map((n) => `gen_b${n}`));
  const made = [1, 2, 3, 4, 5, 6].map((n) => item(n));
  await log.createMany([...made, own, item(9, 'someone-else')].map((d) => ({ delivery: { ...d, subject: d.tenant === 'tb' ? d.subject : 'gen_b2' }, body: '{}' })));
  const end = (d: Delivery, state: 'failed' | 'exhausted' | 'delivered' | 'pending') => log.recordAttempt(d, { run: 0, state, status: state === 'delivered' ? 200 : 500, durationMs: 1 });
  await end(made[0]!, 'failed');
  await end(made[1]!, 'exhausted');
  // waiting for its next attempt: sent only when pending is asked for
  await end(made[2]!, 'pending');
  await end(made[3]!, 'delivered');
  await end(made[4]!, 'failed');
  // started again by a recovery that died before it queued the job
  await end(made[5]!, 'failed');
  await log.redeliver('gen_b6', 'dlv_b6');
  await end(own, 'failed');

  const data: RecoverWebhooksJobData = { tenant: 'tb', batchId, states: ['failed', 'exhausted'], createdAt: Date.now() };
  const job = await queue.add(WEBHOOK_JOBS.recover.name, data, recoveryJobOptions('rcv_btest1'));
  // cut short after the first item: it is not read again
  await job.updateProgress({ scanned: 1, redelivered: 1, through: 1 });
  const result = await runRecovery(job, deps());
  // in the asked states: b2, b5 and the batch's own (b3 waits for a retry; b6 was started, and is queued)
  expect(result).toMatchObject({ scanned: 4, redelivered: 4, through: 6 });
  const delivers = async () => (await queue.getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.name === WEBHOOK_JOBS.deliver.name && String(j.id).startsWith('dlv_b'));
  expect((await delivers()).map((j) => j.id).sort()).toEqual(['dlv_b0-r1', 'dlv_b2-r1', 'dlv_b5-r1', 'dlv_b6-r1']);
  expect((await log.load('gen_b1', 'dlv_b1'))?.delivery).toMatchObject({ run: 0, state: 'failed' });
  expect((await log.load('gen_b2', 'dlv_b9'))?.delivery).toMatchObject({ run: 0, state: 'pending', tenant: 'someone-else' });
  expect((await log.load(batchId, 'dlv_b0'))?.delivery).toMatchObject({ run: 1, state: 'pending' });

  // asked with pending: what waits (for its retry or its queued run) is sent now, a new run each
  const now = await runRecovery(await queue.add(WEBHOOK_JOBS.recover.name, { ...data, states: ['pending'] }, recoveryJobOptions('rcv_btest2')), deps());
  expect(now).toMatchObject({ scanned: 5, redelivered: 5, through: 6 });
  expect((await log.load('gen_b3', 'dlv_b3'))?.delivery).toMatchObject({ run: 1, state: 'pending' });
  expect((await log.load('gen_b6', 'dlv_b6'))?.delivery).toMatchObject({ run: 2, state: 'pending' });
  expect((await log.load('gen_b1', 'dlv_b1'))?.delivery).toMatchObject({ run: 0, state: 'failed' });
});

it("a batch's redelivery reads every page of items, past the first 500", async () => {
  const log = new DeliveryLog(redis, keys, 3600);
  const batchId = 'batch_rt2';
  const ids = Array.from({ length: 1203 }, (_, i) => `gen_p${i}`);
  await redis.rpush(keys.batchItems(batchId), ...ids);
  // deliveries on the first item, on both sides of each page boundary, and on the last
  const at = [0, 499, 500, 999, 1000, 1202];
  const made = at.map((i): Delivery => ({ ...delivery(i, 'tp'), id: `dlv_p${i}`, webhookId: `msg_p${i}`, subject: `gen_p${i}` }));
  await log.createMany(made.map((d) => ({ delivery: d, body: '{}' })));
  for (const d of made) await log.recordAttempt(d, { run: 0, state: 'failed', status: 410, durationMs: 1 });
  const data: RecoverWebhooksJobData = { tenant: 'tp', batchId, states: ['failed'], createdAt: Date.now() };
  const result = await runRecovery(await queue.add(WEBHOOK_JOBS.recover.name, data, recoveryJobOptions('rcv_ptest1')), deps());
  expect(result).toMatchObject({ scanned: 6, redelivered: 6, through: 1203 });
  for (const d of made) expect((await log.load(d.subject, d.id))?.delivery).toMatchObject({ run: 1, state: 'pending' });
});
