import path from 'node:path';
import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnApi, spawnWorker, type NodeProcess } from './support/processes';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const HOUR_MS = 3_600_000;

describe('the upstream lease across hosts whose clocks disagree', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'skew', worker: false, env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl } });
  });
  afterAll(async () => {
    await killAllSpawned();
    await stack.close();
    await upstream.close();
  });

  const workerEnv = (clockShiftMs: number) => ({
    ...stack.env,
    LOG_LEVEL: 'info',
    // the upstream lease (this plus 5 s) outlasts the worst start-up of the second worker on a loaded machine
    GENERATOR_TIMEOUT_MS: '30000',
    WORKER_LOCK_DURATION_MS: '1500',
    WORKER_STALLED_INTERVAL_MS: '500',
    NODE_OPTIONS: `--require ${path.join(__dirname, 'support', 'shift-clock.js')}`,
    IMAGEGEN_TEST_CLOCK_SHIFT_MS: String(clockShiftMs),
  });

  it('a worker whose clock runs an hour ahead still waits for the live lease: exactly one upstream call', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 4000 });
    const a: NodeProcess = await spawnWorker({ env: workerEnv(0), name: 'on-time' });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'two clocks' });
    await eventually(async () => (upstream.calls.length === 1 ? true : undefined));
    const b = await spawnWorker({ env: workerEnv(HOUR_MS), name: 'an-hour-ahead' });
    // the first worker freezes mid-call past its lock: the second one is handed the job
    a.signal('SIGSTOP');
    // (its clock really is an hour ahead: its own log lines say so)
    const started = await b.waitForLog('worker started');
    expect(Date.parse(started.time!) - Date.now()).toBeGreaterThan(HOUR_MS - 60_000);
    // frozen until the second worker has been handed the job and met the lease
    const generatingRuns = async () => (await stack.api.queues.generate.getJobLogs(created.body.id)).logs.filter((l) => /stage=generating/.test(l)).length;
    await eventually(async () => ((await generatingRuns()) >= 2 ? true : undefined), 30_000, 100);
    await sleep(500);
    a.signal('SIGCONT');
    const done = await eventually(async () => {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      return g.status === 'completed' ? g : undefined;
    }, 40_000, 200);
    expect(done.result.image.url).toMatch(/\/original-[0-9a-f]{8}\.png$/);
    const { logs } = await stack.api.queues.generate.getJobLogs(created.body.id);
    // it did run on the second worker too…
    expect(logs.filter((l) => /stage=generating/.test(l)).length).toBeGreaterThanOrEqual(2);
    // …which, judging the lease by its own clock, would have called again
    expect(upstream.calls).toHaveLength(1);
  });

  it('ids made by API processes whose clocks disagree by hours carry Redis time, so listings keep creation order', async () => {
    const api = (shift: number, name: string) =>
      spawnApi({ env: { ...stack.env, PORT: '', NODE_OPTIONS: `--require ${path.join(__dirname, 'support', 'shift-clock.js')}`, IMAGEGEN_TEST_CLOCK_SHIFT_MS: String(shift) }, name });
    const [ahead, behind] = await Promise.all([api(HOUR_MS, 'api-an-hour-ahead'), api(-2 * HOUR_MS, 'api-two-hours-behind')]);
    const idTime = (id: string) => parseInt(id.slice(id.indexOf('_') + 1, id.indexOf('_') + 10), 36);
    const redisNow = async () => {
      const [s, us] = await stack.redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    // the clock is measured once the connection is ready: wait for a first submission to be accepted
    await eventually(async () => ((await postJson(`${ahead.baseUrl}/v1/generations`, { topic: 'warm up' })).status === 202 ? true : undefined));
    const made: string[] = [];
    for (const [i, base] of [ahead.baseUrl, behind.baseUrl, ahead.baseUrl, behind.baseUrl].entries()) {
      const before = await redisNow();
      const created = await postJson(`${base}/v1/generations`, { topic: `in turn ${i}` });
      const after = await redisNow();
      expect(idTime(created.body.id)).toBeGreaterThanOrEqual(before - 1000);
      expect(idTime(created.body.id)).toBeLessThanOrEqual(after + 1000);
      made.push(created.body.id);
      await sleep(20);
    }
    // newest first, in the order they were made, whichever host made them
    const listed = (await getJson(`${stack.baseUrl}/v1/generations?limit=100`)).body.data.map((g: { id: string }) => g.id).filter((id: string) => made.includes(id));
    expect(listed).toEqual([...made].reverse());
  });
});

