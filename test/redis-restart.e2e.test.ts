import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnApi, spawnWorker, startRedisServer, type ApiProcess, type NodeProcess, type RedisServer } from './support/processes';
import { deleteUnder, plainRedis, testPrefix } from './support/redis';
import { getJson, postJson } from './support/stack';

/**
 * Redis (a private redis-server with AOF, appendfsync always) is shut down and started
 * again while an API process and a worker process are busy. While it is away the API
 * answers 503 at once and stays alive; nothing accepted before the outage is lost, and
 * everything completes afterwards without restarting either process.
 */

const N = Number(process.env.REDIS_RESTART_JOBS ?? 20);
const OUTAGE_MS = Number(process.env.REDIS_OUTAGE_MS ?? 3000);
/** A 503 slower than this counts as hanging. */
const FAST_MS = Number(process.env.REDIS_DOWN_MAX_ANSWER_MS ?? 1000);
const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[redis-restart] ${msg}\n`);

interface Probe {
  what: string;
  status: number;
  ms: number;
  contentType: string | null;
  body: any;
}

const operator = { Authorization: `Basic ${Buffer.from('ops:test-admin-password').toString('base64')}` };

async function probe(what: string, url: string, init?: RequestInit): Promise<Probe> {
  const t = Date.now();
  // the abort is only a backstop: a hanging answer shows up as a slow status 0
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
  const text = res ? await res.text().catch(() => '') : '';
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { what, status: res?.status ?? 0, ms: Date.now() - t, contentType: res?.headers.get('content-type') ?? null, body };
}

describe('Redis stops and comes back under load', () => {
  let server: RedisServer;
  let upstream: FakeUpstream;
  let api: ApiProcess;
  let worker: NodeProcess;
  let redis: Redis;
  let dataDir: string;
  const prefix = testPrefix('redisrestart');

  beforeAll(async () => {
    server = await startRedisServer();
    upstream = await FakeUpstream.start();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-redisrestart-'));
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
      GENERATOR_TIMEOUT_MS: '20000',
      WORKER_CONCURRENCY: process.env.REDIS_RESTART_CONCURRENCY ?? '4',
      ...(process.env.WORKER_LOCK_DURATION_MS ? { WORKER_LOCK_DURATION_MS: process.env.WORKER_LOCK_DURATION_MS } : {}),
      ...(process.env.WORKER_STALLED_INTERVAL_MS ? { WORKER_STALLED_INTERVAL_MS: process.env.WORKER_STALLED_INTERVAL_MS } : {}),
      SHUTDOWN_TIMEOUT_MS: '5000',
    };
    api = await spawnApi({ env, name: 'api' });
    worker = await spawnWorker({ env, name: 'worker' });
  });

  afterAll(async () => {
    // the node processes first: the redis-server is needed a moment longer for the clean-up
    await Promise.all([api?.kill(), worker?.kill()]);
    if (server?.running) {
      redis ??= plainRedis(server.url);
      await deleteUnder(redis, prefix).catch(() => undefined);
    }
    await redis?.quit().catch(() => redis.disconnect());
    await upstream?.close();
    await server?.destroy();
    await killAllSpawned();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers 503 at once while Redis is down, loses nothing, and completes everything after', async () => {
    // every generation: a slowish upstream answer, then a short streamed download
    upstream.enqueue(...Array.from({ length: N }, () => ({ kind: 'ok' as const, delayMs: 600, file: { kind: 'slow' as const, chunkDelayMs: 50 } })));
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const res = await postJson(`${api.baseUrl}/v1/generations`, { topic: `outage-${i}` });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const statuses = async () => Promise.all(ids.map(async (id) => (await getJson(`${api.baseUrl}/v1/generations/${id}`)).body.status as string));

    // under load: some finished, some running, some still waiting
    await eventually(async () => {
      const s = await statuses();
      return s.includes('completed') && s.includes('active') && s.includes('queued') ? true : undefined;
    }, 20_000, 20);
    const beforeOutage = await statuses();
    const count = (s: string[], st: string) => s.filter((x) => x === st).length;

    const tStop = Date.now();
    // SHUTDOWN (what `redis-cli shutdown` sends) fsyncs the AOF; REDIS_STOP=sigterm|sigkill tries the others
    await server.stop((process.env.REDIS_STOP as 'shutdown' | 'sigterm' | 'sigkill' | undefined) ?? 'shutdown');
    const stopMs = Date.now() - tStop;
    expect(server.running).toBe(false);

    // while it is away: 503 problem+json at once for the API, not-ready, but alive
    const probes: Probe[] = [];
    const downUntil = Date.now() + OUTAGE_MS;
    let i = 0;
    while (Date.now() < downUntil) {
      probes.push(
        ...(await Promise.all([
          probe('POST /v1/generations', `${api.baseUrl}/v1/generations`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ topic: `during-outage-${i++}` }) }),
          probe('GET /v1/generations/:id', `${api.baseUrl}/v1/generations/${ids[0]}`),
          probe('GET /readyz', `${api.baseUrl}/readyz`),
          probe('GET /healthz', `${api.baseUrl}/healthz`),
          probe('GET /metrics', `${api.baseUrl}/metrics`, { headers: operator }),
          probe('GET /admin/queues/api/queues', `${api.baseUrl}/admin/queues/api/queues`, { headers: operator }),
        ])),
      );
      await sleep(200);
    }
    const tRestart = Date.now();
    await server.start();
    const restartMs = Date.now() - tRestart;

    const posts = probes.filter((p) => p.what === 'POST /v1/generations');
    expect(posts.length).toBeGreaterThanOrEqual(3);
    for (const p of probes.filter((p) => p.what.includes('/v1/') || p.what.includes('/admin/queues/api'))) {
      expect({ what: p.what, status: p.status, type: p.contentType, problemStatus: p.body?.status }).toEqual({
        what: p.what,
        status: 503,
        type: expect.stringMatching(/^application\/problem\+json/),
        problemStatus: 503,
      });
      expect({ what: p.what, ms: p.ms, fast: p.ms < FAST_MS }).toEqual({ what: p.what, ms: p.ms, fast: true });
    }
    for (const p of probes.filter((p) => p.what === 'GET /readyz')) {
      expect(p.status).toBe(503);
      expect(p.ms).toBeLessThan(FAST_MS + 500);
    }
    // the process's own metrics still answer; the queue depths read from Redis are left out meanwhile
    for (const p of probes.filter((p) => p.what === 'GET /metrics')) {
      expect({ status: p.status, cpu: /^process_cpu_seconds_total/m.test(p.body), requests: /^imagegen_http_requests_total\{/m.test(p.body), queues: /^imagegen_queue_jobs\{/m.test(p.body) }).toEqual({ status: 200, cpu: true, requests: true, queues: false });
      expect(p.ms).toBeLessThan(FAST_MS + 500);
    }
    for (const p of probes.filter((p) => p.what === 'GET /healthz')) {
      expect(p.status).toBe(200);
      expect(p.ms).toBeLessThan(FAST_MS);
    }
    expect(api.exit).toBeUndefined();
    expect(worker.exit).toBeUndefined();

    // back: ready again, new work accepted, and every generation accepted before the outage ends completed
    const readyMs = await eventually(async () => ((await probe('readyz', `${api.baseUrl}/readyz`)).status === 200 ? Date.now() - tRestart : undefined), 15_000, 25);
    const fresh = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'after-outage' }, { Prefer: 'wait=20' });
    expect(fresh.status).toBe(200);
    expect(fresh.body.status).toBe('completed');
    await eventually(async () => ((await statuses()).every((s) => s === 'completed' || s === 'failed') ? true : undefined), 40_000, 100).catch(async (err) => {
      // a timeout names what is still open, where BullMQ holds it, and what the worker said last
      const open = (await Promise.all(ids.map(async (id) => (await getJson(`${api.baseUrl}/v1/generations/${id}`)).body))).filter((g) => g.status !== 'completed' && g.status !== 'failed');
      const r = plainRedis(server.url);
      const q = `${prefix}:generate`;
      const where = await Promise.all(
        open.map(async (g) => ({ id: g.id, status: g.status, active: await r.lpos(`${q}:active`, g.id), wait: await r.lpos(`${q}:wait`, g.id), prioritized: await r.zscore(`${q}:prioritized`, g.id), delayed: await r.zscore(`${q}:delayed`, g.id), lock: await r.get(`${q}:${g.id}:lock`), job: await r.hmget(`${q}:${g.id}`, 'ats', 'atm', 'processedOn') })),
      );
      await r.quit();
      throw new Error(`${(err as Error).message}\nstill open: ${JSON.stringify(where)}\nworker log tail:\n${worker.stdout().slice(-3000)}`);
    });
    const allDoneMs = Date.now() - tRestart;
    const final = await Promise.all(ids.map(async (id) => (await getJson(`${api.baseUrl}/v1/generations/${id}`)).body));
    for (const g of final) {
      expect({ id: g.id, status: g.status, error: g.error }).toEqual({ id: g.id, status: 'completed', error: undefined });
      expect(g.result.thumbnails.length).toBeGreaterThan(0);
      expect((await fetch(g.result.image.url)).status).toBe(200);
    }
    // nothing lost in BullMQ either, and no 503-rejected submission left anything behind
    redis = plainRedis(server.url);
    const jobStates = await Promise.all(ids.map((id) => redis.exists(`${prefix}:generate:${id}`)));
    expect(jobStates.every((e) => e === 1)).toBe(true);
    const listed = (await getJson(`${api.baseUrl}/v1/generations?limit=100`)).body;
    const listedTopics = (listed.data as { request: { topic: string } }[]).map((g) => g.request.topic);
    expect(listedTopics.filter((t: string) => t.startsWith('during-outage-'))).toEqual([]);
    // the upstream was paid once per generation: the outage made no one ask twice
    expect(upstream.calls.length).toBe(N + 1);
    // still the same two processes
    expect(api.exit).toBeUndefined();
    expect(worker.exit).toBeUndefined();

    const stat = (ps: Probe[]) => (ps.length ? `${ps.length} probes, max ${Math.max(...ps.map((p) => p.ms))} ms, median ${ps.map((p) => p.ms).sort((a, b) => a - b)[Math.floor(ps.length / 2)]} ms` : 'none');
    log(`before the outage: ${count(beforeOutage, 'completed')} completed, ${count(beforeOutage, 'active')} active, ${count(beforeOutage, 'queued')} queued of ${N}`);
    log(`redis shutdown took ${stopMs} ms; down ${OUTAGE_MS} ms; restart (AOF load) ${restartMs} ms`);
    for (const what of ['POST /v1/generations', 'GET /v1/generations/:id', 'GET /readyz', 'GET /healthz']) log(`while down, ${what}: ${stat(probes.filter((p) => p.what === what))}`);
    log(`after restart: /readyz 200 after ${readyMs} ms; all ${N} completed ${allDoneMs} ms after restart; upstream calls ${upstream.calls.length} for ${N + 1} generations`);
  });
});
