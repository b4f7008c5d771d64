import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { GenerationStore, keysFor, QUEUES, type GenerationRecord } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnApi, spawnWorker, type ApiProcess, type NodeProcess } from './support/processes';
import { deleteUnder, REDIS_URL, testPrefix } from './support/redis';
import { startS3Server, type S3Server } from './support/s3';

/**
 * Many hosts, nothing shared but Redis and the object store: two API processes and three
 * worker processes (built dist), each worker with an empty DATA_DIR of its own, STORAGE=s3.
 * Generations are submitted across both APIs; one worker and one API are SIGKILLed mid-run.
 * Every generation completes exactly once, with exactly its files in the bucket.
 */

const N = Number(process.env.MANY_HOSTS_GENERATIONS ?? 500);
const IN_FLIGHT = 8;
const log = (msg: string) => process.stdout.write(`[many-hosts] ${msg}\n`);

describe('two APIs and three workers on separate disks, STORAGE=s3', () => {
  const prefix = testPrefix('many-hosts');
  let s3: S3Server;
  let upstream: FakeUpstream;
  let redis: Redis;
  let eventsConn: Redis;
  let queueEvents: QueueEvents;
  let queue: Queue;
  let sub: Redis;
  const dataDirs: string[] = [];
  const apis: ApiProcess[] = [];
  const workers: NodeProcess[] = [];
  const jobCompletions = new Map<string, number>();
  const recordCompletions = new Map<string, number>();

  beforeAll(async () => {
    [s3, upstream] = await Promise.all([startS3Server(), FakeUpstream.start()]);
    // a small image: the test is about who does what, not about image work
    upstream.defaultFile = { kind: 'image', width: 96, height: 64 };
    redis = new Redis(REDIS_URL);
    eventsConn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    queueEvents = new QueueEvents(QUEUES.generate, { connection: eventsConn, prefix });
    queueEvents.on('completed', ({ jobId }) => jobCompletions.set(jobId, (jobCompletions.get(jobId) ?? 0) + 1));
    await queueEvents.waitUntilReady();
    queue = new Queue(QUEUES.generate, { connection: redis, prefix });
    sub = new Redis(REDIS_URL);
    sub.on('pmessage', (_p: string, channel: string, message: string) => {
      if ((JSON.parse(message) as { type: string }).type !== 'generation.completed') return;
      const id = channel.slice(channel.lastIndexOf(':') + 1);
      recordCompletions.set(id, (recordCompletions.get(id) ?? 0) + 1);
    });
    await sub.psubscribe(keysFor(prefix).generationChannel('*'));
  });

  afterAll(async () => {
    await killAllSpawned();
    await queueEvents?.close().catch(() => undefined);
    await queue?.close().catch(() => undefined);
    await Promise.all([eventsConn, sub].map((c) => c?.quit().catch(() => undefined)));
    if (redis) {
      await deleteUnder(redis, prefix);
      await redis.quit();
    }
    await upstream?.close();
    await s3?.destroy();
    await Promise.all(dataDirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it(`${N} generations across both APIs complete exactly once with their files in the bucket, through a worker and an API SIGKILLed`, async () => {
    const t0 = Date.now();
    // what every process must agree on; nothing else is shared
    const shared = {
      ...s3.env(),
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      ADMIN_PASSWORD: 'many-hosts-admin',
      GENERATOR_MAX_ATTEMPTS: '10',
      GENERATOR_BACKOFF_MS: '200',
      LOG_LEVEL: 'info',
    };
    const workerEnv = async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-host-'));
      dataDirs.push(dir);
      return {
        ...shared,
        DATA_DIR: dir,
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        // a dead worker's jobs are picked up within seconds, and its upstream leases run out soon
        GENERATOR_TIMEOUT_MS: '8000',
        GENERATOR_BACKOFF_MAX_MS: '2000',
        WORKER_LOCK_DURATION_MS: '4000',
        WORKER_STALLED_INTERVAL_MS: '2000',
        WORKER_CONCURRENCY: '16',
        CPU_CONCURRENCY: '1',
        THUMBNAIL_SIZES: '48',
        THUMBHASH: 'false',
      };
    };
    const apiEnv = async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-host-'));
      dataDirs.push(dir);
      return { ...shared, DATA_DIR: dir, RATE_LIMIT_PER_MINUTE: '1000000' };
    };
    const [apiEnvs, workerEnvs] = await Promise.all([Promise.all([apiEnv(), apiEnv()]), Promise.all([workerEnv(), workerEnv(), workerEnv()])]);
    const started = await Promise.all([
      ...apiEnvs.map((env, i) => spawnApi({ env, name: `api-${i + 1}`, readyTimeoutMs: 60_000 })),
      ...workerEnvs.map((env, i) => spawnWorker({ env, name: `worker-${i + 1}`, readyTimeoutMs: 60_000 })),
    ]);
    apis.push(...(started.slice(0, 2) as ApiProcess[]));
    workers.push(...started.slice(2));
    log(`5 processes up in ${Date.now() - t0} ms`);

    // each item keeps its Idempotency-Key: one that met a dead API is sent again to the other
    const ids = new Array<string>(N);
    const retried: number[] = [];
    let submitted = 0;
    const submit = async (i: number) => {
      const body = JSON.stringify({ topic: `host ${i}`, style: 'VECTOR_IMAGE', size: 'SQUARE' });
      for (let round = 0; ; round++) {
        const live = apis.filter((a) => !a.exit);
        const api = live[(i + round) % live.length]!;
        try {
          const res = await fetch(`${api.baseUrl}/v1/generations`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `item-${i}` }, body });
          const answer = (await res.json()) as { id: string };
          if (res.status !== 202) throw new Error(`status ${res.status}: ${JSON.stringify(answer)}`);
          ids[i] = answer.id;
          if (round > 0) retried.push(i);
          submitted++;
          return;
        } catch (err) {
          if (round >= 5) throw err;
          await sleep(100);
        }
      }
    };
    let next = 0;
    const submitting = Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < N) await submit(next++);
      }),
    );

    const completed = () => redis.zcard(keysFor(prefix).tenantGenerations('default', 'completed'));
    // mid-run, each at its own moment: one worker while it holds jobs, one API while requests reach it
    const killWorker = (async () => {
      await eventually(async () => ((await completed()) >= N / 5 ? true : undefined), 60_000, 50);
      const exit = await workers[0]!.kill();
      log(`worker-1 SIGKILLed at ${await completed()} completed, ${submitted} submitted (${Date.now() - t0} ms)`);
      return exit;
    })();
    const killApi = (async () => {
      await eventually(async () => (submitted >= N / 2 ? true : undefined), 60_000, 5);
      const exit = await apis[1]!.kill();
      log(`api-2 SIGKILLed at ${submitted} submitted, ${await completed()} completed (${Date.now() - t0} ms)`);
      return exit;
    })();
    expect((await Promise.all([killWorker, killApi])).map((e) => e.signal)).toEqual(['SIGKILL', 'SIGKILL']);
    await submitting;
    log(`all ${N} submitted (${retried.length} sent again after api-2 went) at ${Date.now() - t0} ms`);

    await eventually(async () => ((await completed()) >= N ? true : undefined), 90_000, 200);
    log(`all ${N} completed at ${Date.now() - t0} ms`);
    // the last events trail the records by a moment
    await eventually(async () => (ids.every((id) => jobCompletions.has(id) && recordCompletions.has(id)) ? true : undefined), 10_000);
    await sleep(500);

    // one generation per item, whatever API took it and however often it was sent
    expect(new Set(ids).size).toBe(N);
    expect(await redis.zcard(keysFor(prefix).tenantGenerations('default'))).toBe(N);
    const store = new GenerationStore(redis, keysFor(prefix), 3600);
    const records = (await Promise.all(ids.map((id) => store.get(id)))) as GenerationRecord[];
    expect(records.filter((r) => r.status !== 'completed')).toEqual([]);
    // completed exactly once: one record transition, one BullMQ completion each
    const twice = ids.filter((id) => recordCompletions.get(id) !== 1 || jobCompletions.get(id) !== 1);
    expect(twice).toEqual([]);

    // the bucket holds one original and one thumbnail per generation, and nothing else
    const expected = records.flatMap((r) => [r.result!.image.key, ...r.result!.thumbnails.map((t) => t.key)]).sort();
    expect(records.every((r) => new RegExp(`^${r.fileToken}/original-[0-9a-f]{8}\\.png$`).test(r.result!.image.key) && r.result!.thumbnails.length === 1)).toBe(true);
    expect(await s3.keys()).toEqual(expected);
    // and no host kept a file of its own
    for (const dir of dataDirs) expect(await readdir(dir)).toEqual([]);

    // any surviving API serves any generation's files
    const survivor = apis[0]!;
    for (const r of records.filter((_, i) => i % 50 === 0)) {
      const res = await fetch(`${survivor.baseUrl}/files/${r.result!.image.key}`);
      expect([res.status, res.headers.get('content-type'), (await res.arrayBuffer()).byteLength]).toEqual([200, 'image/png', r.result!.image.bytes]);
    }
    // every generation paid the upstream; a repeat call only follows a lost or failed attempt
    // (a call the killed worker had in flight, or one past GENERATOR_TIMEOUT_MS on a busy machine)
    const callsByTopic = new Map<string, number>();
    for (const c of upstream.calls) {
      const topic = (c.body as { topic: string }).topic;
      callsByTopic.set(topic, (callsByTopic.get(topic) ?? 0) + 1);
    }
    expect(records.filter((r) => !callsByTopic.has(r.request.topic)).map((r) => r.id)).toEqual([]);
    const repeated = records.filter((r) => callsByTopic.get(r.request.topic)! > 1);
    const reasons = new Map<string, number>();
    for (const r of repeated) {
      const { logs } = await queue.getJobLogs(r.id);
      const codes = logs.flatMap((l) => /failed: ([a-z_]+)/.exec(l)?.[1] ?? []);
      for (const code of codes.length ? codes : ['recovered from the killed worker']) reasons.set(code, (reasons.get(code) ?? 0) + 1);
    }
    log(`upstream calls ${upstream.calls.length} for ${N} generations; called again: ${repeated.length} (${[...reasons].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); total ${Date.now() - t0} ms`);
    // about a minute on an idle 2-core machine; the limit leaves room for a machine shared with other test runs
  }, 300_000);
});
