import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '@imagegen/shared';
import { LostFetches } from './lost-fetches';
import { until } from '../__tests__/until';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-lost-${randomBytes(4).toString('hex')}`;
const NAME = 'lost-fetches';
const connections: Redis[] = [];
const connect = () => {
  const c = new Redis(url, { maxRetriesPerRequest: null });
  connections.push(c);
  return c;
};

afterAll(async () => {
  const redis = connect();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
});

it('after a reconnect, a job fetched but never heard of goes back to the queue; running and foreign jobs stay', async () => {
  const queue = new Queue(NAME, { connection: connect(), prefix });
  const [lostJob, foreignJob, runningJob] = (await queue.addBulk(['lost', 'foreign', 'running'].map((name) => ({ name, data: {} })))) as [Job, Job, Job];

  // long locks and stalled checks: BullMQ alone would not find the lost job for a minute or more
  const slow = { prefix, autorun: false, lockDuration: 30_000, stalledInterval: 30_000 };
  const connection = connect();
  const lost = new LostFetches(createLogger('worker', 'silent'), 200);
  const calls: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const worker = new Worker(
    NAME,
    lost.track(async (job: Job) => {
      calls.push(job.name);
      if (job.name === 'running') await gate;
      return job.name;
    }),
    { ...slow, connection, concurrency: 2 },
  );
  const other = new Worker(NAME, null, { ...slow, connection: connect() });
  // the reconnect below makes the lock renewal fail once, which the worker reports
  for (const w of [worker, other]) w.on('error', () => undefined);

  // as when the fetch's reply is lost: the job is active under this worker's token, the worker never saw it
  expect((await worker.getNextJob(`${worker.id}:lost`, { block: false }))?.id).toBe(lostJob.id);
  // another worker's job, fetched and held the same way
  expect((await other.getNextJob(`${other.id}:0`, { block: false }))?.id).toBe(foreignJob.id);
  lost.watch(worker, connection);
  void worker.run();
  await until(() => (calls.includes('running') ? true : undefined), 5_000);

  // Redis comes back: the lost job runs at once, the running one is left alone
  connection.disconnect(true);
  await until(() => (calls.includes('lost') ? true : undefined), 5_000);
  release();
  await until(async () => ((await runningJob.getState()) === 'completed' ? true : undefined), 5_000);
  expect(await queue.getJobState(lostJob.id!)).toBe('completed');
  expect(calls.sort()).toEqual(['lost', 'running']);
  expect(await queue.getJobState(foreignJob.id!)).toBe('active');
  expect(await connection.get(`${queue.toKey(foreignJob.id!)}:lock`)).toBe(`${other.id}:0`);

  await worker.close();
  await other.close(true);
  await queue.close();
});
