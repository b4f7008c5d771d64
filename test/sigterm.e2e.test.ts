import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUES, type GenerationRecord } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { exitWithin, killAllSpawned, spawnWorker } from './support/processes';
import { postJson, startStack, type Stack } from './support/stack';

/**
 * SIGTERM drains: the worker stops taking jobs, lets the ones it holds finish, and exits 0
 * on its own. Jobs still waiting stay queued for the next worker.
 */

const CONCURRENCY = Number(process.env.SIGTERM_CONCURRENCY ?? 3);
const JOBS = CONCURRENCY * 2;
/** Each job: the upstream answers after this long (plus 600 ms per slot index), then the file streams in 4 chunks. */
const UPSTREAM_DELAY_MS = Number(process.env.SIGTERM_UPSTREAM_DELAY_MS ?? 600);
const CHUNK_DELAY_MS = Number(process.env.SIGTERM_CHUNK_DELAY_MS ?? 150);
const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[sigterm] ${msg}\n`);

describe('SIGTERM drains a worker process', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  let queueEvents: QueueEvents;
  let eventsConn: Redis;
  const completedEvents = new Map<string, number>();
  const stalledEvents: string[] = [];
  const activeEvents: { jobId: string; at: number }[] = [];

  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'sigterm',
      worker: false,
      env: {
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        WORKER_CONCURRENCY: String(CONCURRENCY),
        WORKER_LOCK_DURATION_MS: process.env.WORKER_LOCK_DURATION_MS ?? '2000',
        WORKER_STALLED_INTERVAL_MS: process.env.WORKER_STALLED_INTERVAL_MS ?? '1000',
        SHUTDOWN_TIMEOUT_MS: process.env.SHUTDOWN_TIMEOUT_MS ?? '30000',
      },
    });
    eventsConn = new Redis(stack.env.REDIS_URL!, { maxRetriesPerRequest: null });
    queueEvents = new QueueEvents(QUEUES.generate, { connection: eventsConn, prefix: stack.prefix });
    queueEvents.on('completed', ({ jobId }) => completedEvents.set(jobId, (completedEvents.get(jobId) ?? 0) + 1));
    queueEvents.on('stalled', ({ jobId }) => stalledEvents.push(jobId));
    queueEvents.on('active', ({ jobId }) => activeEvents.push({ jobId, at: Date.now() }));
    await queueEvents.waitUntilReady();
  });

  afterAll(async () => {
    await killAllSpawned();
    await queueEvents?.close().catch(() => undefined);
    await eventsConn?.quit().catch(() => undefined);
    await stack?.close();
    await upstream?.close();
  });

  it('active jobs finish before exit, waiting ones stay queued for the next worker', async () => {
    const env = { ...stack.env, LOG_LEVEL: 'info' };
    // staggered: during the drain one slot frees up early while the others still work, and must stay empty
    const slow = (i: number) => ({ kind: 'ok' as const, delayMs: UPSTREAM_DELAY_MS + (i % CONCURRENCY) * 600, file: { kind: 'slow' as const, chunkDelayMs: CHUNK_DELAY_MS } });
    upstream.enqueue(...Array.from({ length: JOBS }, (_, i) => slow(i)));
    const worker = await spawnWorker({ env, name: 'worker-1' });

    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `drain-${i}` });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const records = async () => Promise.all(ids.map(async (id) => (await stack.api.store.get(id)) as GenerationRecord));

    // every slot busy, every busy job waiting on its upstream call: nothing is about to finish
    await eventually(async () => {
      const rs = await records();
      return rs.filter((r) => r.status === 'active').length === CONCURRENCY && upstream.calls.length === CONCURRENCY ? true : undefined;
    }, 15_000, 10);
    const before = await records();
    const activeIds = before.filter((r) => r.status === 'active').map((r) => r.id);
    const queuedIds = before.filter((r) => r.status === 'queued').map((r) => r.id);
    expect(queuedIds).toHaveLength(JOBS - CONCURRENCY);

    const tSignal = Date.now();
    worker.signal('SIGTERM');
    await worker.waitForLog((l) => /draining/.test(l.msg), 5000);
    // it must leave by itself: no SIGKILL from us, just a deadline for the test
    const exit = await exitWithin(worker, 25_000);
    const drainMs = Date.now() - tSignal;
    expect(exit).toBeDefined();
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(worker.logs().map((l) => l.msg)).toContain('worker stopped');
    expect(worker.logs().map((l) => l.msg)).not.toContain('shutdown timeout: closing with jobs still active (they will be recovered as stalled)');
    await sleep(200);

    // the jobs it held finished, each once, before it went
    const after = await records();
    const byId = new Map(after.map((r) => [r.id, r]));
    for (const id of activeIds) {
      const r = byId.get(id)!;
      expect({ id, status: r.status, stage: r.stage, attempts: r.attempts }).toEqual({ id, status: 'completed', stage: 'done', attempts: 1 });
      expect(Date.parse(r.completedAt!)).toBeGreaterThanOrEqual(tSignal);
      expect(Date.parse(r.completedAt!)).toBeLessThanOrEqual(tSignal + drainMs);
      expect(await (await stack.api.queues.generate.getJob(id))?.getState()).toBe('completed');
    }
    // the waiting ones were not started after the signal: untouched, still in the queue
    for (const id of queuedIds) {
      const r = byId.get(id)!;
      expect({ id, status: r.status, stage: r.stage, attempts: r.attempts, startedAt: r.startedAt }).toEqual({ id, status: 'queued', stage: 'queued', attempts: 0, startedAt: undefined });
      expect(['waiting', 'prioritized']).toContain(await (await stack.api.queues.generate.getJob(id))?.getState());
    }
    // a slot did free up well before the exit (else the test proves less than it claims)
    const firstDone = Math.min(...activeIds.map((id) => Date.parse(byId.get(id)!.completedAt!)));
    expect(tSignal + drainMs - firstDone).toBeGreaterThan(500);
    expect(activeEvents.filter((e) => e.at >= tSignal && queuedIds.includes(e.jobId))).toEqual([]);
    expect(upstream.calls).toHaveLength(CONCURRENCY);
    expect(stalledEvents).toEqual([]);
    expect(await stack.api.queues.generate.getActiveCount()).toBe(0);

    // the next worker takes them
    const tSecond = Date.now();
    const second = await spawnWorker({ env, name: 'worker-2' });
    await eventually(async () => ((await records()).every((r) => r.status === 'completed') ? true : undefined), 20_000, 100);
    const secondMs = Date.now() - tSecond;
    await eventually(async () => (ids.every((id) => completedEvents.has(id)) ? true : undefined), 5000);
    await sleep(200);
    for (const id of ids) expect({ id, completions: completedEvents.get(id) }).toEqual({ id, completions: 1 });
    expect(upstream.calls).toHaveLength(JOBS);
    expect(stalledEvents).toEqual([]);

    const tTerm2 = Date.now();
    const exit2 = await second.terminate(15_000);
    const idleExitMs = Date.now() - tTerm2;
    expect(exit2).toMatchObject({ code: 0, signal: null });
    log(
      `concurrency ${CONCURRENCY}, jobs ${JOBS}: SIGTERM with ${activeIds.length} active / ${queuedIds.length} queued; ` +
        `worker-1 exited 0 after ${drainMs} ms of draining (first held job done ${firstDone - tSignal} ms after the signal, slot left empty); worker-2 finished the ${queuedIds.length} queued in ${secondMs} ms (incl. start); idle worker-2 exited 0 in ${idleExitMs} ms`,
    );
  });
});
