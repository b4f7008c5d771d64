import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { TEMPORARY_DIR } from '@imagegen/shared';
import { eventually } from './support/net';
import { REDIS_URL } from './support/redis';
import { postJson, startStack, type Stack } from './support/stack';

const HOUR_MS = 3_600_000;
const tokenOf = (url: string) => new URL(url).pathname.split('/')[2] as string;

describe('file retention', () => {
  let stack: Stack;
  let connection: Redis;
  let maintenance: Queue;
  beforeAll(async () => {
    stack = await startStack({ name: 'retention', env: { RECORD_RETENTION_HOURS: '48' } });
    connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    maintenance = new Queue('maintenance', { connection, prefix: stack.prefix });
  });
  afterAll(async () => {
    await maintenance.close();
    // a queue does not close a connection it was handed
    await connection.quit();
    await stack.close();
  });
  const expiryKey = () => `${stack.prefix}:files:expiry`;

  it('a sweep is scheduled once, whatever the number of workers', async () => {
    await stack.startWorker();
    const schedulers = await maintenance.getJobSchedulers();
    expect(schedulers.map((s) => s.key)).toEqual(['sweep']);
    expect(schedulers[0]?.every).toBe(600_000);
  });

  it('files live as long as their record, failed or cancelled ones an hour; the sweep removes what is due', async () => {
    const t0 = Date.now();
    const kept = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'kept' }, { Prefer: 'wait=30' });
    const expired = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'expired' }, { Prefer: 'wait=30' });
    const keptToken = tokenOf(kept.body.result.image.url);
    const expiredToken = tokenOf(expired.body.result.image.url);
    const keptScore = Number(await stack.redis.zscore(expiryKey(), keptToken));
    expect(keptScore).toBeGreaterThanOrEqual(t0 + 48 * HOUR_MS - 1000);
    expect(keptScore).toBeLessThanOrEqual(Date.now() + 48 * HOUR_MS + 1000);
    expect(await stack.redis.ttl(`${stack.prefix}:gen:${kept.body.id}`)).toBeGreaterThan(47 * 3600);

    // a cancelled generation's files (if any were written) go after the grace period
    await stack.worker?.close();
    const cancelled = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'cancelled' });
    await fetch(`${stack.baseUrl}/v1/generations/${cancelled.body.id}`, { method: 'DELETE' });
    const token = (await stack.api.store.get(cancelled.body.id))!.fileToken;
    const cancelledScore = Number(await stack.redis.zscore(expiryKey(), token));
    expect(cancelledScore).toBeGreaterThan(Date.now() + HOUR_MS - 5000);
    expect(cancelledScore).toBeLessThan(Date.now() + HOUR_MS + 5000);

    // as if the retention of one of them had ended
    await stack.redis.zadd(expiryKey(), 'XX', 0, expiredToken);
    // and as if a worker had died mid-write long ago, while another writes right now
    const tmpDir = path.join(stack.dataDir, 'files', TEMPORARY_DIR);
    await mkdir(tmpDir, { recursive: true });
    await writeFile(path.join(tmpDir, 'stale.png.0a1b.tmp'), 'half');
    await writeFile(path.join(tmpDir, 'fresh.png.2c3d.tmp'), 'in progress');
    const longAgo = new Date(Date.now() - HOUR_MS);
    await utimes(path.join(tmpDir, 'stale.png.0a1b.tmp'), longAgo, longAgo);
    const job = await maintenance.add('sweep', {});
    await eventually(async () => ((await job.getState()) === 'completed' ? true : undefined), 20_000);
    expect((await maintenance.getJob(job.id!))?.returnvalue).toMatchObject({ files: 1, temporary: 1, records: 0, orphans: 0 });
    expect(await readdir(tmpDir)).toEqual(['fresh.png.2c3d.tmp']);

    expect((await fetch(expired.body.result.image.url)).status).toBe(404);
    for (const t of expired.body.result.thumbnails) expect((await fetch(t.url)).status).toBe(404);
    expect((await fetch(kept.body.result.image.url)).status).toBe(200);
    const dirs = await readdir(path.join(stack.dataDir, 'files'));
    expect(dirs).toContain(keptToken);
    expect(dirs).not.toContain(expiredToken);
    expect(await stack.redis.zscore(expiryKey(), expiredToken)).toBeNull();
    expect(await stack.redis.zscore(expiryKey(), keptToken)).not.toBeNull();
  });
});
