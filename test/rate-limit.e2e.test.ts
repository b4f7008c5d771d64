import { FakeUpstream } from './support/fake-upstream';
import { eventually } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const WINDOW_MS = 1000;
const BACKOFF_MAX_MS = 3000;
/** A worker stamps a grant just before Redis runs the limiter: it may look this much early. */
const STAMP_SLACK_MS = 200;

/**
 * BullMQ's limiter, replayed over the grant times of jobs (BullMQ's `processedOn`): a window
 * opens at the first grant after the previous window closed and lasts `windowMs` (INCR and, on
 * the first grant, PEXPIRE of one Redis key shared by every worker). Returns each window's grants.
 * The limit applies to job starts: the upstream call of a job follows its start by however long
 * the worker takes to get there, so upstream arrival times carry that jitter and are not replayed.
 */
function limiterWindows(grants: number[], windowMs: number): number[][] {
  const windows: number[][] = [];
  for (const t of [...grants].sort((a, b) => a - b)) {
    const current = windows.at(-1);
    if (current && t < current[0]! + windowMs - STAMP_SLACK_MS) current.push(t);
    else windows.push([t]);
  }
  return windows;
}

describe('global upstream rate limit shared by every worker', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'limiter',
      worker: false,
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_RATE_LIMIT_MAX: '2', GENERATOR_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS), GENERATOR_BACKOFF_MS: '100', GENERATOR_BACKOFF_MAX_MS: String(BACKOFF_MAX_MS) },
    });
    // two workers with room for many jobs each: only the shared limiter holds them back
    await stack.startWorker();
    await stack.startWorker();
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  async function waitAllDone(ids: string[]) {
    return eventually(async () => {
      const all = await Promise.all(ids.map(async (id) => (await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body));
      return all.every((g) => g.status === 'completed' || g.status === 'failed') ? all : undefined;
    }, 30_000);
  }

  it('never starts more than 2 upstream calls per window across two workers', async () => {
    const before = upstream.calls.length;
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `limited ${i}` })).body.id);
    const done = await waitAllDone(ids);
    expect(done.every((g) => g.status === 'completed')).toBe(true);

    const calls = upstream.calls.slice(before);
    expect(calls).toHaveLength(8);
    const grants: number[] = [];
    const lags: number[] = [];
    for (const [i, id] of ids.entries()) {
      const job = await stack.api.queues.generate.getJob(id);
      // one start each, so processedOn is the job's only pass through the limiter
      expect({ id, started: job?.attemptsStarted }).toEqual({ id, started: 1 });
      const mine = calls.filter((c) => (c.body as { topic?: string }).topic === `limited ${i}`);
      expect(mine).toHaveLength(1);
      // the upstream call follows the limiter's grant, never precedes it
      expect(mine[0]!.at).toBeGreaterThanOrEqual(job!.processedOn!);
      grants.push(job!.processedOn!);
      lags.push(mine[0]!.at - job!.processedOn!);
    }
    const windows = limiterWindows(grants, WINDOW_MS);
    process.stdout.write(`[rate-limit] grants per window ${JSON.stringify(windows.map((w) => w.length))}; upstream call after its grant: ${Math.min(...lags)}-${Math.max(...lags)} ms\n`);
    expect(windows.map((w) => w.length).filter((n) => n > 2)).toEqual([]);
    expect(windows.length).toBeGreaterThanOrEqual(4);
  });

  it('a 429 with Retry-After holds back every worker, not only the job that got it', async () => {
    await new Promise((r) => setTimeout(r, WINDOW_MS)); // start from a fresh window
    const before = upstream.calls.length;
    upstream.enqueue({ kind: 'status', status: 429, retryAfter: '2' });
    const first = (await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'hits the limit' })).body.id;
    await eventually(async () => (upstream.calls.length > before ? true : undefined));
    const limitedAt = upstream.calls[before]!.at;
    await new Promise((r) => setTimeout(r, 100));
    const second = (await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'arrives during the pause' })).body.id;
    await waitAllDone([first, second]);
    const later = upstream.calls.slice(before + 1).map((c) => c.at);
    expect(later).toHaveLength(2);
    for (const t of later) expect(t - limitedAt).toBeGreaterThanOrEqual(1900);
  });

  it('a Retry-After past GENERATOR_BACKOFF_MAX_MS holds every worker back only for that long', async () => {
    await new Promise((r) => setTimeout(r, WINDOW_MS)); // start from a fresh window
    const before = upstream.calls.length;
    // about 31 years
    upstream.enqueue({ kind: 'status', status: 429, retryAfter: '1000000000' });
    const first = (await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'asked to wait for ever' })).body.id;
    await eventually(async () => (upstream.calls.length > before ? true : undefined));
    const limitedAt = upstream.calls[before]!.at;
    const pause = await eventually(async () => {
      const ms = await stack.redis.pttl(stack.api.queues.generate.keys.limiter!);
      return ms > WINDOW_MS ? ms : undefined;
    });
    // before: the limiter key lived 10^12 ms, and no generation of anyone started again
    expect(pause).toBeLessThanOrEqual(BACKOFF_MAX_MS);
    const second = (await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'arrives during the long pause' })).body.id;
    const done = await waitAllDone([first, second]);
    expect(done.map((g) => g.status)).toEqual(['completed', 'completed']);
    const later = upstream.calls.slice(before + 1).map((c) => c.at);
    expect(later).toHaveLength(2);
    for (const t of later) expect(t - limitedAt).toBeGreaterThanOrEqual(BACKOFF_MAX_MS - 200);
  });
});

describe('the limit check', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'limiter-unshared',
      worker: false,
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_RATE_LIMIT_MAX: '2', GENERATOR_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS) },
    });
    // one worker keeps to the limit, the other ignores it: the limit is not shared
    await stack.startWorker();
    await stack.startWorker({ GENERATOR_RATE_LIMIT_MAX: '0' });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('catches workers that do not share the limit', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `unshared ${i}` })).body.id);
    await eventually(async () => {
      const all = await Promise.all(ids.map(async (id) => (await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body.status));
      return all.every((s) => s === 'completed') ? true : undefined;
    }, 30_000);
    const grants = await Promise.all(ids.map(async (id) => (await stack.api.queues.generate.getJob(id))!.processedOn!));
    expect(Math.max(...limiterWindows(grants, WINDOW_MS).map((w) => w.length))).toBeGreaterThan(2);
  });
});
