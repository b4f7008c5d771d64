import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, freePort, sleep } from './support/net';
import { exitWithin, killAllSpawned, spawnApi, spawnWorker, startRedisServer, type ApiProcess, type NodeProcess, type RedisServer } from './support/processes';
import { deleteUnder, plainRedis, testPrefix } from './support/redis';
import { ADMIN_AUTH, getJson, postJson } from './support/stack';

/**
 * Redis that answers but takes no writes: full under `maxmemory` with `noeviction` (what BullMQ
 * needs). A private redis-server is made full by lowering its `maxmemory` under what it holds,
 * and given room again by lifting it. The API answers 503; a generation under way waits without
 * spending its attempts, and the worker neither spins nor floods its log; a worker starts; a key
 * can still be revoked.
 */
const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[redis-full] ${msg}\n`);

describe('Redis full (maxmemory reached)', () => {
  let server: RedisServer;
  let upstream: FakeUpstream;
  let api: ApiProcess;
  let worker: NodeProcess;
  let redis: Redis;
  let dataDir: string;
  let workerEnv: Record<string, string>;
  const prefix = testPrefix('redisfull');

  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  /** From now on every write that may add memory is refused (OOM). */
  const fill = async () => {
    await redis.config('SET', 'maxmemory', String(Math.floor((await usedMemory()) / 2)));
    await expect(redis.set(`${prefix}:probe`, '1')).rejects.toThrow(/^OOM /);
  };
  const makeRoom = () => redis.config('SET', 'maxmemory', '0');
  /** The generation once it has ended (completed or failed), read through the API. */
  const ended = (id: string) =>
    eventually(async () => {
      const g = (await getJson(`${api.baseUrl}/v1/generations/${id}`)).body;
      return g.status === 'completed' || g.status === 'failed' ? g : undefined;
    }, 30_000, 100);
  /** A failover under way, as a client of the old master sees it: a replica (of a master that is not there), refusing writes with READONLY. */
  const demote = async () => {
    await redis.replicaof('127.0.0.1', String(await freePort()));
    await expect(redis.set(`${prefix}:probe`, '1')).rejects.toThrow(/^READONLY /);
  };
  const promote = () => redis.replicaof('NO', 'ONE');

  beforeAll(async () => {
    server = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'noeviction'] });
    redis = plainRedis(server.url);
    upstream = await FakeUpstream.start();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-redisfull-'));
    const env = {
      REDIS_URL: server.url,
      QUEUE_PREFIX: prefix,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      ADMIN_USER: 'ops',
      ADMIN_PASSWORD: 'test-admin-password',
      GENERATOR: 'aistudios',
      GENERATOR_URL: upstream.generateUrl,
      GENERATOR_BACKOFF_MS: '200',
      GENERATOR_TIMEOUT_MS: '3000',
      GENERATOR_MAX_ATTEMPTS: '2',
      WORKER_CONCURRENCY: '2',
      SHUTDOWN_TIMEOUT_MS: '5000',
    };
    workerEnv = env;
    api = await spawnApi({ env, name: 'api' });
    worker = await spawnWorker({ env, name: 'worker' });
  });

  afterEach(async () => {
    await promote();
    await makeRoom();
  });

  afterAll(async () => {
    await Promise.all([api?.kill(), worker?.kill()]);
    if (redis) {
      await makeRoom().catch(() => undefined);
      await deleteUnder(redis, prefix).catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect());
    }
    await upstream?.close();
    await server?.destroy();
    await killAllSpawned();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers 503 problem+json while full, enqueues nothing, and still serves reads', async () => {
    const jobsBefore = await redis.keys(`${prefix}:generate:gen_*`);
    await fill();
    const single = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'while-full single' });
    const batch = await postJson(`${api.baseUrl}/v1/batches`, { items: [{ topic: 'while-full item' }] });
    // an operator's write on the dashboard (pausing a queue) answers the same
    const pause = await fetch(`${api.baseUrl}/admin/queues/api/queues/generate/pause`, { method: 'PUT', headers: ADMIN_AUTH });
    const paused = { status: pause.status, headers: pause.headers, body: await pause.json() };
    for (const res of [single, batch, paused]) {
      expect({ status: res.status, type: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after'), problem: res.body.status }).toEqual({
        status: 503,
        type: expect.stringMatching(/^application\/problem\+json/),
        retryAfter: '30',
        problem: 503,
      });
      expect(res.body.detail).toMatch(/refuses writes/);
      expect(JSON.stringify(res.body)).not.toMatch(/OOM|stack|at /);
    }
    expect((await getJson(`${api.baseUrl}/v1/generations?limit=5`)).status).toBe(200);
    expect(api.stdout()).toMatch(/Redis refuses writes: answered 503/);
    await makeRoom();

    const listed = (await getJson(`${api.baseUrl}/v1/generations?limit=100`)).body.data as { request: { topic: string } }[];
    expect(listed.filter((g) => g.request.topic.startsWith('while-full'))).toEqual([]);
    expect((await getJson(`${api.baseUrl}/v1/batches`)).body.data).toEqual([]);
    expect(await redis.keys(`${prefix}:generate:gen_*`)).toEqual(jobsBefore);
  });

  it('lets a generation under way wait while full, without spending its attempts, and completes it after', async () => {
    // the upstream answers after 1.5 s: Redis is full by then, so the checkpoint of its answer is refused
    upstream.enqueue({ kind: 'ok', delayMs: 1500 });
    const callsBefore = upstream.calls.length;
    const made = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'under way when full' });
    expect(made.status).toBe(202);
    await eventually(async () => (upstream.calls.length > callsBefore ? true : undefined), 10_000, 10);
    await fill();
    // longer than GENERATOR_MAX_ATTEMPTS (2) retries with a 200 ms backoff would last
    await sleep(5000);
    const during = (await getJson(`${api.baseUrl}/v1/generations/${made.body.id}`)).body;
    expect({ status: during.status, attempts: during.attempts }).toEqual({ status: 'active', attempts: 1 });
    await makeRoom();

    const done = await ended(made.body.id);
    expect({ status: done.status, attempts: done.attempts, error: done.error }).toEqual({ status: 'completed', attempts: 1, error: undefined });
    expect((await fetch(done.result.image.url)).status).toBe(200);
    // the answer that came while full was kept and checkpointed once Redis had room: the upstream was paid once
    expect(worker.stdout()).toMatch(/Redis refuses writes: the generation keeps what it paid for and writes it again/);
    expect(worker.stdout()).not.toMatch(/generation attempt failed/);
    log(`full for 5 s during the upstream call: completed, attempts ${done.attempts}, upstream calls ${upstream.calls.length - callsBefore}`);
    expect(upstream.calls.length - callsBefore).toBe(1);
  });

  it('records an attempt that fails while full with its own failure once Redis has room, not as a refusal', async () => {
    // the download outlasts GENERATOR_TIMEOUT_MS (3 s): the attempt fails while Redis is full
    upstream.enqueue({ kind: 'ok', file: { kind: 'slow', chunkDelayMs: 2000 } });
    const fetchesBefore = upstream.fetches.length;
    const made = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'fails while full' });
    expect(made.status).toBe(202);
    await eventually(async () => (upstream.fetches.length > fetchesBefore ? true : undefined), 10_000, 10);
    await fill();
    await eventually(async () => (worker.stdout().includes(`"generationId":"${made.body.id}"`) && /download_timeout/.test(worker.stdout()) ? true : undefined), 10_000, 50);
    await sleep(2000);
    await makeRoom();
    const logsKey = `${prefix}:generate:${made.body.id}:logs`;
    await eventually(async () => ((await redis.lrange(logsKey, 0, -1)).some((l) => /attempt 1 failed: download_timeout/.test(l)) ? true : undefined), 30_000, 100);
    await ended(made.body.id);
    // the attempt's own failure, never Redis's refusal, is what BullMQ was told
    expect(await redis.hget(`${prefix}:generate:${made.body.id}`, 'stacktrace')).not.toMatch(/OOM /);
  });

  it('lets a generation under way wait out a failover (Redis read-only for a while) within its attempt', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 1500 });
    const made = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'under way in a failover' });
    expect(made.status).toBe(202);
    const calls = upstream.calls.length;
    await eventually(async () => (upstream.calls.length > calls ? true : undefined), 10_000, 10);
    await demote();
    await sleep(5000);
    await promote();
    const done = await ended(made.body.id);
    expect({ status: done.status, attempts: done.attempts, error: done.error }).toEqual({ status: 'completed', attempts: 1, error: undefined });
    expect(worker.stdout()).toMatch(/"error":"READONLY [^\n]*Redis refuses writes: the generation/);
    expect(upstream.calls.length - calls).toBe(1);
  });

  it('starts a worker while full, with jobs waiting: it neither exits nor spins, and takes them once Redis has room', async () => {
    await worker.kill();
    const waiting = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'waiting while full' });
    expect(waiting.status).toBe(202);
    await fill();
    worker = await spawnWorker({ env: workerEnv, name: 'worker-started-full' });
    await sleep(3000);
    expect(worker.exit).toBeUndefined();
    expect(worker.stdout()).toMatch(/Redis refuses writes: the webhook master secret is made once it takes them/);
    // BullMQ asks for the next job again at once when taking it is refused: thousands of errors a second, unless the worker holds off
    const errors = (worker.stdout().match(/worker error/g) ?? []).length;
    log(`a worker started while full, a job waiting: ${errors} worker errors logged in 3 s`);
    expect(errors).toBeLessThan(60);
    await makeRoom();
    const done = await ended(waiting.body.id);
    expect({ status: done.status, attempts: done.attempts }).toEqual({ status: 'completed', attempts: 1 });
  });

  it('stops a worker told to while a generation waits for Redis within SHUTDOWN_TIMEOUT_MS, without counting an attempt; another finishes it', async () => {
    await worker.kill();
    // a short drain and lock, so the generation is recovered soon after
    const stopping = await spawnWorker({ env: { ...workerEnv, SHUTDOWN_TIMEOUT_MS: '3000', WORKER_LOCK_DURATION_MS: '3000' }, name: 'worker-stopped-waiting' });
    upstream.enqueue({ kind: 'ok', delayMs: 1000 });
    const callsBefore = upstream.calls.length;
    const made = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'waiting when stopped' });
    await eventually(async () => (upstream.calls.length > callsBefore ? true : undefined), 10_000, 10);
    await fill();
    await eventually(async () => (/Redis refuses writes: the generation/.test(stopping.stdout()) ? true : undefined), 10_000, 50);
    const told = Date.now();
    stopping.child.kill('SIGTERM');
    const exit = await exitWithin(stopping, 15_000);
    const stopMs = Date.now() - told;
    log(`a worker told to stop while its generation waited for Redis exited in ${stopMs} ms (code ${exit?.code})`);
    expect(exit?.code).toBe(0);
    expect(stopMs).toBeLessThan(8000);
    expect(stopping.stdout()).not.toMatch(/generation attempt failed/);

    await makeRoom();
    worker = await spawnWorker({ env: { ...workerEnv, WORKER_STALLED_INTERVAL_MS: '1000' }, name: 'worker-after-stop' });
    const done = await ended(made.body.id);
    expect({ status: done.status, error: done.error }).toEqual({ status: 'completed', error: undefined });
    // recovered from the stopped worker (a stall), its retry budget untouched: one attempt made
    expect(await redis.hmget(`${prefix}:generate:${made.body.id}`, 'atm', 'stc')).toEqual(['1', '1']);
  });

  it('revokes a key while full: a revocation does not wait for memory', async () => {
    // (last: a key makes every later call need one)
    const created = await postJson(`${api.baseUrl}/admin/tenants/acme/keys`, {}, ADMIN_AUTH);
    expect(created.status).toBe(201);
    const asAcme = { Authorization: `Bearer ${created.body.key}` };
    expect((await getJson(`${api.baseUrl}/v1/generations`, asAcme)).status).toBe(200);

    await fill();
    const revoked = await fetch(`${api.baseUrl}/admin/tenants/acme/keys/${created.body.id}`, { method: 'DELETE', headers: ADMIN_AUTH });
    expect(revoked.status).toBe(204);
    await eventually(async () => ((await getJson(`${api.baseUrl}/v1/generations`, asAcme)).status === 401 ? true : undefined), 3000, 50);
  });
});
