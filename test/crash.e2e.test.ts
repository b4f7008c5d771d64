import path from 'node:path';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { keysFor, QUEUES, type GenerationRecord } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnWorker, storedFiles, type NodeProcess } from './support/processes';
import { getJson, postJson, startStack, type Stack } from './support/stack';

/**
 * A worker process is SIGKILLed while it holds several active jobs at different stages;
 * a second worker process recovers them (BullMQ stalled-job detection) and every job
 * completes exactly once, with one stored result each, paying the upstream again only
 * for the jobs whose original had not been stored yet.
 */

const N = Number(process.env.CRASH_JOBS ?? 8);
const LOCK_MS = process.env.WORKER_LOCK_DURATION_MS ?? '2000';
const STALLED_MS = process.env.WORKER_STALLED_INTERVAL_MS ?? '1000';
const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[crash] ${msg}\n`);

describe('SIGKILL of a worker holding active jobs', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  let queueEvents: QueueEvents;
  let eventsConn: Redis;
  let sub: Redis;
  const workers: NodeProcess[] = [];
  const completedEvents = new Map<string, unknown[]>();
  const stalledEvents: string[] = [];
  const failedEvents: { jobId: string; reason: string }[] = [];
  const recordCompleted = new Map<string, number>();

  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'crash',
      worker: false,
      env: {
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        WORKER_LOCK_DURATION_MS: LOCK_MS,
        WORKER_STALLED_INTERVAL_MS: STALLED_MS,
        WORKER_MAX_STALLED_COUNT: process.env.WORKER_MAX_STALLED_COUNT ?? '2',
        GENERATOR_BACKOFF_MS: process.env.GENERATOR_BACKOFF_MS ?? '100',
        GENERATOR_TIMEOUT_MS: '20000',
        SHUTDOWN_TIMEOUT_MS: '5000',
      },
    });
    // listeners first: every completion and stall from here on is counted
    eventsConn = new Redis(stack.env.REDIS_URL!, { maxRetriesPerRequest: null });
    queueEvents = new QueueEvents(QUEUES.generate, { connection: eventsConn, prefix: stack.prefix });
    queueEvents.on('completed', ({ jobId, returnvalue }) => completedEvents.set(jobId, [...(completedEvents.get(jobId) ?? []), returnvalue]));
    queueEvents.on('stalled', ({ jobId }) => stalledEvents.push(jobId));
    queueEvents.on('failed', ({ jobId, failedReason }) => failedEvents.push({ jobId, reason: failedReason }));
    await queueEvents.waitUntilReady();
    sub = new Redis(stack.env.REDIS_URL!);
    sub.on('pmessage', (_p: string, channel: string, message: string) => {
      if ((JSON.parse(message) as { type: string }).type !== 'generation.completed') return;
      const id = channel.slice(channel.lastIndexOf(':') + 1);
      recordCompleted.set(id, (recordCompleted.get(id) ?? 0) + 1);
    });
    await sub.psubscribe(keysFor(stack.prefix).generationChannel('*'));
  });

  afterAll(async () => {
    await killAllSpawned();
    await queueEvents?.close().catch(() => undefined);
    await eventsConn?.quit().catch(() => undefined);
    await sub?.quit().catch(() => undefined);
    await stack?.close();
    await upstream?.close();
  });

  it('a second worker finishes every job exactly once, with one stored result each', async () => {
    const workerEnv = { ...stack.env, LOG_LEVEL: 'info' };
    // the first worker thumbnails one image at a time, so big originals queue up stored but unfinished
    const first = await spawnWorker({ env: { ...workerEnv, CPU_CONCURRENCY: '1' }, name: 'worker-1' });
    workers.push(first);

    // what the first N upstream calls do, in arrival order: big images (stored, then queued for the
    // one CPU slot to thumbnail), slow downloads (URL checkpointed, file half read), slow answers
    const big = Math.max(2, Math.ceil(N * 0.4));
    const slowDownloads = Math.max(1, Math.ceil((N - big) / 2));
    const script = [
      ...Array.from({ length: big }, () => ({ kind: 'ok' as const, file: { kind: 'image' as const, width: 6000, height: 4000 } })),
      ...Array.from({ length: slowDownloads }, () => ({ kind: 'ok' as const, file: { kind: 'slow' as const, chunkDelayMs: 1500 } })),
      ...Array.from({ length: Math.max(0, N - big - slowDownloads) }, () => ({ kind: 'ok' as const, delayMs: 3000 })),
    ];
    upstream.enqueue(...script);

    const ids: string[] = [];
    const topicOf = new Map<string, string>();
    for (let i = 0; i < N; i++) {
      const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `crash-${i}` });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
      topicOf.set(res.body.id, `crash-${i}`);
    }
    const records = async () => Promise.all(ids.map(async (id) => (await stack.api.store.get(id)) as GenerationRecord));

    // wait for the moment worth killing: every job taken, some originals stored but unfinished, some downloads running
    const tSubmit = Date.now();
    await eventually(
      async () => {
        const rs = await records();
        const active = rs.filter((r) => r.status === 'active');
        const storedUnfinished = active.filter((r) => r.original);
        const downloading = active.filter((r) => r.stage === 'downloading');
        return rs.every((r) => r.status !== 'queued') && storedUnfinished.length >= 2 && downloading.length >= 1 ? true : undefined;
      },
      20_000,
      10,
    );
    const killedAfterMs = Date.now() - tSubmit;
    const exit = await first.kill();
    const tKill = Date.now();
    expect(exit.signal).toBe('SIGKILL');
    // anything the dead process had already sent lands now; after this nothing changes until a worker starts
    await sleep(200);

    const atKill = await records();
    const callsAtKill = upstream.calls.length;
    const callsBefore = countByTopic(upstream.calls.slice(0, callsAtKill));
    const activeAtKill = atKill.filter((r) => r.status === 'active');
    const bullActive = (await stack.api.queues.generate.getActive()).map((j) => j.id!).sort();
    const fetched = new Set(upstream.fetches.map((f) => f.path));
    // calls each generation must still make after the kill
    const expectedAfter = new Map<string, number>();
    for (const r of atKill) {
      let n: number;
      if (r.status === 'completed' || r.original) n = 0; // paid for and stored: never again
      else if (r.upstreamUrl) n = fetched.has(new URL(r.upstreamUrl).pathname) ? 1 : 0; // a fetched URL is gone (served once)
      else n = 1; // the call was in flight (or not made yet)
      expectedAfter.set(r.id, n);
    }
    const stages = atKill.map((r) => `${r.status}/${r.stage}${r.original ? '+original' : ''}${r.upstreamUrl ? '+url' : ''}`);
    log(`killed worker-1 ${killedAfterMs} ms after submitting; at kill: ${stages.join(', ')}`);
    log(`BullMQ active at kill: ${bullActive.length}; upstream calls so far: ${callsAtKill}`);

    expect(activeAtKill.length).toBeGreaterThanOrEqual(Math.min(N, 3));
    // the jobs really were held by the dead worker (a job may also sit between its record's completion and BullMQ's)
    expect(bullActive).toEqual(expect.arrayContaining(activeAtKill.map((r) => r.id)));
    const completedAtKill = new Set(atKill.filter((r) => r.status === 'completed').map((r) => r.id));
    expect(bullActive.filter((id) => !activeAtKill.some((r) => r.id === id)).every((id) => completedAtKill.has(id))).toBe(true);
    expect(activeAtKill.some((r) => r.original)).toBe(true);
    expect(activeAtKill.some((r) => !r.original)).toBe(true);

    const second = await spawnWorker({ env: workerEnv, name: 'worker-2' });
    workers.push(second);
    const tSecond = Date.now();

    const done = await eventually(
      async () => {
        const rs = await records();
        if (rs.some((r) => r.status === 'failed' || r.status === 'cancelled')) return rs; // fail fast below
        return rs.every((r) => r.status === 'completed') ? rs : undefined;
      },
      40_000,
      100,
    );
    const recoveredMs = Date.now() - tKill;
    expect(done.map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    // the events of the last completion may trail the record by a moment
    await eventually(async () => (ids.every((id) => completedEvents.has(id) && recordCompleted.has(id)) ? true : undefined), 5000);
    await sleep(300);

    // exactly once: one BullMQ completion per job, returning a real completion (not a skipped rerun)
    for (const id of ids) {
      // a job whose record was already completed when the worker died is finished as 'skipped' by the rerun
      const outcome = completedAtKill.has(id) && bullActive.includes(id) ? expect.objectContaining({ status: expect.stringMatching(/^(completed|skipped)$/) }) : expect.objectContaining({ status: 'completed' });
      expect({ id, completions: completedEvents.get(id) }).toEqual({ id, completions: [outcome] });
      expect({ id, recordCompleted: recordCompleted.get(id) }).toEqual({ id, recordCompleted: 1 });
      const job = await stack.api.queues.generate.getJob(id);
      expect(await job?.getState()).toBe('completed');
      expect(job?.finishedOn).toBeGreaterThan(0);
    }
    expect(failedEvents.filter((f) => !/download|expired/i.test(f.reason))).toEqual([]);
    // attempts counts every run: those a failure ended, the one the kill cut short, the last (before: the kill's not counted)
    for (const r of done) {
      const job = (await stack.api.queues.generate.getJob(r.id))!;
      const cutShort = activeAtKill.some((a) => a.id === r.id) ? 1 : 0;
      // (a job whose record had completed when its worker died stalled too; its rerun changed nothing)
      expect({ id: r.id, stalled: job.stalledCounter }).toEqual({ id: r.id, stalled: bullActive.includes(r.id) ? 1 : 0 });
      // (BullMQ's attemptsMade counts the completed run and each failed one)
      expect({ id: r.id, attempts: r.attempts }).toEqual({ id: r.id, attempts: job.attemptsMade + cutShort });
    }
    // the jobs the dead worker held were recovered as stalled, each once
    expect([...stalledEvents].sort()).toEqual(bullActive);

    // one stored result each: the original plus one file per thumbnail size, nothing else; a write
    // the kill cut short leaves its temporary dot-name beside (never served, gone with the folder),
    // at most one per job the dead worker held
    const files = await storedFiles(stack.dataDir);
    expect(Object.keys(files).sort()).toEqual(done.map((r) => r.fileToken).sort());
    const TEMPORARY = /^\.[a-z0-9.-]+\.[0-9a-f]{12}\.tmp$/;
    const cutShort = Object.values(files).flatMap((names) => names.filter((n) => n.startsWith('.')));
    expect(cutShort.filter((n) => !TEMPORARY.test(n))).toEqual([]);
    expect(cutShort.length).toBeLessThanOrEqual(bullActive.length);
    for (const r of done) {
      const expected = [r.result!.image.key, ...r.result!.thumbnails.map((t) => t.key)].map((k) => path.basename(k)).sort();
      expect(r.result!.thumbnails).toHaveLength(3);
      expect({ id: r.id, files: files[r.fileToken]!.filter((n) => !TEMPORARY.test(n)) }).toEqual({ id: r.id, files: expected });
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${r.id}`)).body;
      expect(g).toMatchObject({ status: 'completed', progress: 100 });
      const img = await fetch(g.result.image.url);
      expect(img.status).toBe(200);
      expect(Number((await img.arrayBuffer()).byteLength)).toBe(r.result!.image.bytes);
    }

    // the upstream was paid again only where nothing had been stored
    const callsAfter = countByTopic(upstream.calls.slice(callsAtKill));
    const killedWithoutOriginal = activeAtKill.filter((r) => !r.original).length;
    for (const r of atKill) {
      const topic = topicOf.get(r.id)!;
      expect({ id: r.id, original: !!r.original, callsAfterKill: callsAfter.get(topic) ?? 0 }).toEqual({
        id: r.id,
        original: !!r.original,
        callsAfterKill: expectedAfter.get(r.id),
      });
      expect((callsBefore.get(topic) ?? 0) + (callsAfter.get(topic) ?? 0)).toBeGreaterThanOrEqual(1);
    }
    expect(upstream.calls.length).toBeLessThanOrEqual(N + killedWithoutOriginal);
    expect(second.exit).toBeUndefined();

    log(
      `jobs ${N}; active at kill ${activeAtKill.length} (${activeAtKill.filter((r) => r.original).length} with original stored, ${killedWithoutOriginal} without); ` +
        `upstream calls ${upstream.calls.length} (bound ${N + killedWithoutOriginal}, ${callsAtKill} before kill); stalled events ${stalledEvents.length}; ` +
        `worker-2 started ${tSecond - tKill} ms after kill; all completed ${recoveredMs} ms after kill`,
    );
  });
});

function countByTopic(calls: { body: unknown }[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const c of calls) {
    const topic = (c.body as { topic?: string } | null)?.topic ?? '';
    m.set(topic, (m.get(topic) ?? 0) + 1);
  }
  return m;
}
