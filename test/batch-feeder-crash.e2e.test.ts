import { keysFor } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnWorker } from './support/processes';
import { getJson, postJson, startStack, type Stack } from './support/stack';

/**
 * Worker processes (the built dist) are SIGKILLed while their feeder is part-way through
 * releasing a batch into the generate queue; a fresh worker takes the feeder over once the
 * dead one's lock lapses and the batch still ends with every item completed, counted once.
 */

const N = 240;
const KILLS = 2;
const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[batch-feeder-crash] ${msg}\n`);

describe('SIGKILL of a worker while it feeds a batch', () => {
  let stack: Stack;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    // an upstream answering at once with a tiny image: the run is about feeding, not generating
    upstream = await FakeUpstream.start();
    upstream.defaultFile = { kind: 'image', width: 32, height: 24 };
    stack = await startStack({
      name: 'feeder-crash',
      worker: false,
      env: {
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        RATE_LIMIT_PER_MINUTE: '100000',
        // a small window refilled often: the feeder is at work for the whole run
        BATCH_FEED_WINDOW: '8',
        BATCH_FEED_INTERVAL_MS: '20',
        WORKER_CONCURRENCY: '8',
        THUMBNAIL_SIZES: '16',
        // an upstream call cut off by a kill holds its item's lease this long (+5 s) before it is retried
        GENERATOR_TIMEOUT_MS: '2000',
        WORKER_LOCK_DURATION_MS: '2000',
        WORKER_STALLED_INTERVAL_MS: '1000',
        // an item may be running at each kill: it must come back, not fail as stalled too often
        WORKER_MAX_STALLED_COUNT: String(KILLS + 2),
      },
    });
  });

  afterAll(async () => {
    await killAllSpawned();
    await stack?.close();
    await upstream?.close();
  });

  it('loses no item: after a new worker starts, every item completes and the counts are right', async () => {
    const workerEnv = { ...stack.env, LOG_LEVEL: 'info' };
    const keys = keysFor(stack.prefix);
    const accepted = await postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: N }, (_, i) => ({ topic: `feeder crash ${i}` })) });
    expect(accepted.status).toBe(202);
    const id = accepted.body.id as string;
    const released = async () => Number(await stack.redis.hget(keys.batch(id), 'released'));

    for (let k = 1; k <= KILLS; k++) {
      const worker = await spawnWorker({ env: workerEnv, name: `worker-${k}` });
      // kill it part-way through, once it has fed a further share of the batch itself
      const from = await released();
      const mark = Math.floor((k * N) / (KILLS + 1));
      await eventually(async () => ((await released()) >= Math.max(mark, from + 8) ? true : undefined), 60_000, 5);
      // aim for the narrowest spot: jobs added, the cursor not moved past them yet (else kill anyway)
      const aimUntil = Date.now() + 10_000;
      let between = false;
      while (!between && Date.now() < aimUntil) {
        const jobs = Object.values(await stack.api.queues.generate.getJobCounts()).reduce((a, b) => a + b, 0);
        // counted before the cursor is read: more jobs than the cursor means an add not yet advanced over
        between = jobs > (await released());
      }
      const exit = await worker.kill();
      expect(exit.signal).toBe('SIGKILL');
      await sleep(200);
      const at = (await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body;
      const releasedAtKill = await released();
      const jobsAtKill = Object.values(await stack.api.queues.generate.getJobCounts()).reduce((a, b) => a + b, 0);
      log(`killed worker-${k}${between ? ' (jobs were ahead of the cursor just before)' : ''}: released ${releasedAtKill}/${N}, jobs ${jobsAtKill}, counts ${JSON.stringify(at.counts)}`);
      expect(releasedAtKill).toBeGreaterThan(from);
      expect(releasedAtKill).toBeLessThan(N);
      expect(at.status).toBe('in_progress');
    }

    const t0 = Date.now();
    await spawnWorker({ env: workerEnv, name: 'worker-last' });
    const done = await eventually(
      async () => {
        const b = (await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body;
        return b.status === 'completed' ? b : undefined;
      },
      120_000,
      200,
    );
    log(`the last worker finished the batch in ${Date.now() - t0} ms`);
    expect(done.counts).toEqual({ queued: 0, active: 0, completed: N, failed: 0, cancelled: 0 });
    expect(done.progress).toBe(100);
    expect(await released()).toBe(N);
    // the feeder lets the batch go on its next round
    await eventually(async () => ((await stack.redis.zscore(keys.batchesFeeding(), `default|${id}`)) === null ? true : undefined), 5000);

    const res = await fetch(`${stack.baseUrl}/v1/batches/${id}/results`);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { index: number; id: string; status: string });
    expect(lines.map((l) => l.index)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(lines.filter((l) => l.status !== 'completed')).toEqual([]);
    expect(new Set(lines.map((l) => l.id)).size).toBe(N);
    // one generate job per item, each finished
    const jobs = await Promise.all(lines.map((l) => stack.api.queues.generate.getJob(l.id)));
    expect(await Promise.all(jobs.map((j) => j?.getState()))).toEqual(lines.map(() => 'completed'));
  }, 240_000);
});
