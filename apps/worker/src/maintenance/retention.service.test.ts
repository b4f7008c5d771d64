import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { FsStorage, keysFor, newFileToken, QUEUES, RecordRetention, recoveryJobOptions, type Logger, type Storage } from '@imagegen/shared';
import { RetentionService } from './retention.service';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-retention-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;
let queue: Queue;
let queueConnection: Redis;
let dir: string;

beforeAll(async () => {
  redis = new Redis(url);
  queueConnection = new Redis(url, { maxRetriesPerRequest: null });
  queue = new Queue('generate', { connection: queueConnection, prefix });
  dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-retention-'));
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  await queueConnection.quit();
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

function recording(): Logger & { lines: { msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const keep = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields });
  const logger = { lines, debug: keep, info: keep, warn: keep, error: keep, child: () => logger };
  return logger;
}

it('a token whose files cannot be removed stays due, and its log line does not give the token away', async () => {
  const fs = new FsStorage(dir);
  // a store that refuses removals the way a file system does: naming the path
  const refusing: Storage = Object.assign(Object.create(fs) as Storage, {
    removePrefix: async (p: string) => {
      throw new Error(`EACCES: permission denied, rmdir '${path.join(dir, p)}'`);
    },
  });
  const token = newFileToken();
  await fs.put(`${token}/original.png`, Buffer.from('png'));
  await redis.zadd(keys.fileExpiry(), 1, token);
  const logger = recording();
  const service = new RetentionService(new RecordRetention(redis, keys), refusing, [queue], 3600, logger);
  expect((await service.sweep()).files).toBe(0);
  expect(await redis.zscore(keys.fileExpiry(), token)).toBe('1');
  const line = logger.lines.find((l) => /could not remove files/.test(l.msg));
  expect(line?.fields).toMatchObject({ tokenStart: token.slice(0, 4), error: expect.stringMatching(/^EACCES: permission denied/) });
  expect(JSON.stringify(logger.lines)).not.toContain(token);
  // once the store allows it, the next sweep removes the files and forgets the token
  expect((await new RetentionService(new RecordRetention(redis, keys), fs, [queue], 3600, recording()).sweep()).files).toBe(1);
  expect(await fs.stat(`${token}/original.png`)).toBeNull();
  expect(await redis.zscore(keys.fileExpiry(), token)).toBeNull();
});

it('finished jobs a quiet queue kept past their time are swept, in the webhooks queue as in the generate queue', async () => {
  const webhooks = new Queue(QUEUES.webhooks, { connection: queueConnection, prefix });
  // a job ends: one completes, one fails, with the options real recoveries have (kept a day by age:
  // BullMQ trims them only when another job of the queue finishes)
  const worker = new Worker(
    QUEUES.webhooks,
    async (job) => {
      if (job.data.fail) throw new Error('refused');
      return 'done';
    },
    { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix },
  );
  try {
    await webhooks.add('recover', { fail: false }, recoveryJobOptions('rcv_done'));
    await webhooks.add('recover', { fail: true }, { ...recoveryJobOptions('rcv_failed'), attempts: 1 });
    await eventuallyCounts(webhooks, { completed: 1, failed: 1 });
    const fs = new FsStorage(dir);
    // within the time a finished job is kept (an hour's retention): nothing goes
    expect((await new RetentionService(new RecordRetention(redis, keys), fs, [queue, webhooks], 3600, recording()).sweep()).jobs).toBe(0);
    expect(await webhooks.getJobCounts('completed', 'failed')).toEqual({ completed: 1, failed: 1 });
    // past it (a one-second retention, then a second and more): both go, with their hashes
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await new RetentionService(new RecordRetention(redis, keys), fs, [queue, webhooks], 1, recording()).sweep()).jobs).toBe(2);
    expect(await webhooks.getJobCounts('completed', 'failed')).toEqual({ completed: 0, failed: 0 });
    expect(await redis.exists(`${prefix}:${QUEUES.webhooks}:rcv_done`, `${prefix}:${QUEUES.webhooks}:rcv_failed`)).toBe(0);
  } finally {
    await worker.close();
    await worker.disconnect();
    await webhooks.obliterate({ force: true });
    await webhooks.close();
  }
});

async function eventuallyCounts(q: Queue, want: { completed: number; failed: number }): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const counts = await q.getJobCounts('completed', 'failed');
    if (Object.entries(want).every(([state, n]) => counts[state] === n)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`job counts never reached ${JSON.stringify(want)}`);
}

it('a store that fails every removal is given up on for the sweep after a round of them, and one token that fails alone stops nothing', async () => {
  const fs = new FsStorage(dir);
  let tried = 0;
  // a store that hangs each removal until it times out (here 50 ms; against a hanging store, seconds each)
  const failing: Storage = Object.assign(Object.create(fs) as Storage, {
    removePrefix: async () => {
      tried++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      throw new Error('the object store did not answer');
    },
  });
  const tokens = Array.from({ length: 200 }, () => newFileToken());
  await redis.zadd(keys.fileExpiry(), ...tokens.flatMap((t) => [1, t]));
  expect((await new RetentionService(new RecordRetention(redis, keys), failing, [queue], 3600, recording()).sweep()).files).toBe(0);
  // before: all 200 tried, sixteen at a time (against a hanging store, minutes of timeouts)
  expect(tried).toBeLessThanOrEqual(32);
  expect(await redis.zmscore(keys.fileExpiry(), ...tokens)).toEqual(tokens.map(() => '1'));

  // one token whose removal fails while the rest go: every other one goes in the same sweep
  const bad = tokens[0]!;
  const picky: Storage = Object.assign(Object.create(fs) as Storage, {
    removePrefix: async (p: string) => {
      if (p === bad) throw new Error('EACCES');
      return fs.removePrefix(p);
    },
  });
  expect((await new RetentionService(new RecordRetention(redis, keys), picky, [queue], 3600, recording()).sweep()).files).toBe(199);
  expect(await redis.zmscore(keys.fileExpiry(), ...tokens)).toEqual(tokens.map((t) => (t === bad ? '1' : null)));
  await redis.zrem(keys.fileExpiry(), bad);
});
