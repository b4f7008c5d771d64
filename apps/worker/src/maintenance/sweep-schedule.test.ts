import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, JOBS, QUEUES } from '@imagegen/shared';
import { keepSweepScheduled } from './sweep-schedule';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-sweep-${randomBytes(4).toString('hex')}`;
let redis: Redis;
let queue: Queue;

beforeAll(() => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue(QUEUES.maintenance, { connection: redis, prefix });
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

it('schedules the sweep, and schedules it again once Redis has lost it', async () => {
  const stop = await keepSweepScheduled(queue, 60_000, createLogger('worker', 'silent'), 50);
  try {
    expect(await queue.getJobScheduler(JOBS.sweep.name)).toMatchObject({ every: 60_000 });
    // as after a flush: the scheduler and its next job are gone
    await queue.removeJobScheduler(JOBS.sweep.name);
    expect(await queue.getJobScheduler(JOBS.sweep.name)).toBeUndefined();
    let found;
    for (let i = 0; i < 50 && !found; i++) {
      await new Promise((r) => setTimeout(r, 20));
      found = await queue.getJobScheduler(JOBS.sweep.name);
    }
    expect(found).toMatchObject({ every: 60_000 });
    expect(await queue.getJobSchedulersCount()).toBe(1);
  } finally {
    stop();
  }
});

it('a shorter interval than the one scheduled before starts afresh: no run waits on the old interval after a pause', async () => {
  const logger = createLogger('worker', 'silent');
  (await keepSweepScheduled(queue, 600_000, logger))();
  expect(await queue.getJobScheduler(JOBS.sweep.name)).toMatchObject({ every: 600_000 });
  (await keepSweepScheduled(queue, 2_000, logger))();
  const scheduler = await queue.getJobScheduler(JOBS.sweep.name);
  expect(scheduler).toMatchObject({ every: 2_000 });
  // before: the offset of the 10-minute schedule stayed (up to 600,000 ms), and a run caught up
  // after a pause was put that far ahead (BullMQ aligns the next run to it)
  expect(Number(scheduler?.offset ?? 0)).toBeLessThan(2_000);
  expect(Number(scheduler?.next) - Date.now()).toBeLessThanOrEqual(2_000);
  expect(await queue.getJobSchedulersCount()).toBe(1);
});
