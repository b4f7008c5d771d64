import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { startRedisServer, type RedisServer } from './support/processes';
import { getJson, postJson, startStack, type Stack } from './support/stack';

describe('a job that loses its lock while its upstream call is in flight', () => {
  let redis: RedisServer;
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    redis = await startRedisServer();
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'lease',
      worker: false,
      redisUrl: redis.url,
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_TIMEOUT_MS: '8000', WORKER_LOCK_DURATION_MS: '1500', WORKER_STALLED_INTERVAL_MS: '500' },
    });
    await stack.startWorker();
  });
  afterAll(async () => {
    if (redis.pid) process.kill(redis.pid, 'SIGCONT');
    await stack.close();
    await upstream.close();
    await redis.destroy();
  });

  it('is re-queued by the stall check but never pays the upstream a second time', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 4000 });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'slow and unlucky' });
    await eventually(async () => (upstream.calls.length === 1 ? true : undefined));
    // freeze Redis past the lock: the lock expires, and the stall check hands the job out again
    process.kill(redis.pid!, 'SIGSTOP');
    await sleep(2500);
    process.kill(redis.pid!, 'SIGCONT');
    const done = await eventually(async () => {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      return g.status === 'completed' ? g : undefined;
    }, 40_000, 200);
    expect(done.result.image.url).toMatch(/\/original-[0-9a-f]{8}\.png$/);
    // the job did run twice (re-queued after losing its lock)…
    const { logs } = await stack.api.queues.generate.getJobLogs(created.body.id);
    expect(logs.filter((l) => /stage=generating/.test(l)).length).toBeGreaterThanOrEqual(2);
    // …yet the upstream was called once: the second runner waited on the first one's lease
    expect(upstream.calls).toHaveLength(1);
  });
});
