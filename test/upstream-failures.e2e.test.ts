import { FakeUpstream, type GenerateBehavior } from './support/fake-upstream';
import { ADMIN, getJson, postJson, startStack, type Stack } from './support/stack';
import { eventually } from './support/net';

const BACKOFF_MS = 200;
const TIMEOUT_MS = 1000;
const MAX_BYTES = 300_000;

describe('upstream failures: classification, retries, backoff and safe downloads', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'upstream',
      env: {
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        GENERATOR_MAX_ATTEMPTS: '3',
        GENERATOR_BACKOFF_MS: String(BACKOFF_MS),
        GENERATOR_TIMEOUT_MS: String(TIMEOUT_MS),
        DOWNLOAD_MAX_BYTES: String(MAX_BYTES),
      },
    });
  });
  afterEach(() => upstream.clearScript());
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  /** Scripts the upstream, submits one generation, waits for its end; reports calls and their spacing. */
  async function run(...behaviors: GenerateBehavior[]) {
    const callsBefore = upstream.calls.length;
    const fetchesBefore = upstream.fetches.length;
    upstream.enqueue(...behaviors);
    const started = Date.now();
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'resilience' }, { Prefer: 'wait=60' });
    expect(res.status).toBe(200);
    const calls = upstream.calls.slice(callsBefore);
    const fetches = upstream.fetches.slice(fetchesBefore);
    const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    return { generation: res.body, calls: calls.length, fetches: fetches.map((f) => f.status), gaps, elapsed: Date.now() - started };
  }

  it('429 with Retry-After: waits at least that long, then succeeds', async () => {
    const r = await run({ kind: 'status', status: 429, retryAfter: '1' }, { kind: 'ok' });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 2 });
    expect(r.generation.error).toBeUndefined();
    expect(r.calls).toBe(2);
    expect(r.gaps[0]).toBeGreaterThanOrEqual(1000);
  });

  it('a retry promoted from Bull Board runs at once, its backoff or Retry-After left unwaited', async () => {
    upstream.enqueue({ kind: 'status', status: 503, retryAfter: '60' }, { kind: 'ok' });
    const callsBefore = upstream.calls.length;
    const { body } = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'promoted' });
    // waiting out the Retry-After in the delayed set
    await eventually(async () => ((await (await stack.api.queues.generate.getJob(body.id))?.getState()) === 'delayed' ? true : undefined), 10_000);
    const promotedAt = Date.now();
    const promote = await fetch(`${stack.baseUrl}/admin/queues/api/queues/generate/${body.id}/promote`, { method: 'PUT', headers: { Authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` } });
    expect(promote.status).toBe(204);
    // before: the worker put it back to wait out the 60 s (the board answered 204 all the same)
    const done = await eventually(async () => {
      const g = await getJson(`${stack.baseUrl}/v1/generations/${body.id}`);
      return g.body.status === 'completed' ? g.body : undefined;
    }, 15_000);
    expect(done.attempts).toBe(2);
    expect(upstream.calls.length - callsBefore).toBe(2);
    expect(Date.now() - promotedAt).toBeLessThan(10_000);

    // Promote all: every delayed generation runs
    upstream.enqueue({ kind: 'status', status: 503, retryAfter: '60' }, { kind: 'status', status: 503, retryAfter: '60' }, { kind: 'ok' }, { kind: 'ok' });
    const ids = await Promise.all(['promoted 2', 'promoted 3'].map(async (topic) => (await postJson(`${stack.baseUrl}/v1/generations`, { topic })).body.id as string));
    await eventually(async () => ((await Promise.all(ids.map(async (id) => (await stack.api.queues.generate.getJob(id))?.getState()))).every((s) => s === 'delayed') ? true : undefined), 10_000);
    const all = await fetch(`${stack.baseUrl}/admin/queues/api/queues/generate/promote`, { method: 'PUT', headers: { Authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` } });
    expect(all.status).toBe(200);
    for (const id of ids) {
      await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body.status === 'completed' ? true : undefined), 15_000);
    }
  });

  it('503 with Retry-After as an HTTP date is honoured too', async () => {
    const r = await run({ kind: 'status', status: 503, retryAfter: new Date(Date.now() + 2000).toUTCString() }, { kind: 'ok' });
    expect(r.generation.status).toBe('completed');
    expect(r.calls).toBe(2);
    // HTTP dates have one-second resolution
    expect(r.gaps[0]).toBeGreaterThanOrEqual(1000);
  });

  it('500 then 503: retried with exponential backoff and jitter, then succeeds', async () => {
    const r = await run({ kind: 'status', status: 500 }, { kind: 'status', status: 503 }, { kind: 'ok' });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 3 });
    expect(r.calls).toBe(3);
    // delays: base × 2^(n−1) ± 20 %
    expect(r.gaps[0]).toBeGreaterThanOrEqual(BACKOFF_MS * 0.8);
    expect(r.gaps[1]).toBeGreaterThanOrEqual(BACKOFF_MS * 2 * 0.8);
  });

  it('5xx on every attempt: fails after the configured attempts with upstream_unavailable', async () => {
    const r = await run({ kind: 'status', status: 502 }, { kind: 'status', status: 500 }, { kind: 'status', status: 503 });
    expect(r.generation).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'upstream_unavailable', retryable: true } });
    expect(r.generation.error.message).toMatch(/503/);
    expect(r.calls).toBe(3);
  });

  it('a hanging upstream is cut off by the per-call timeout and retried', async () => {
    const r = await run({ kind: 'hang' }, { kind: 'ok' });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 2 });
    expect(r.calls).toBe(2);
    expect(r.gaps[0]).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(r.gaps[0]).toBeLessThan(TIMEOUT_MS + 3000);
  });

  it('hanging on every attempt fails with upstream_timeout', async () => {
    const r = await run({ kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' });
    expect(r.generation).toMatchObject({ status: 'failed', error: { code: 'upstream_timeout' } });
    expect(r.calls).toBe(3);
  });

  it('a body that is not JSON is retried (a proxy error page is usually passing)', async () => {
    const r = await run({ kind: 'non-json' }, { kind: 'ok' });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 2 });
    expect(r.calls).toBe(2);
  });

  it.each([
    ['JSON without downloadUrl', { kind: 'no-download-url' } as GenerateBehavior, 'upstream_bad_response'],
    ['400', { kind: 'status', status: 400 } as GenerateBehavior, 'upstream_rejected'],
    ['401', { kind: 'status', status: 401 } as GenerateBehavior, 'upstream_unauthorized'],
    ['403', { kind: 'status', status: 403 } as GenerateBehavior, 'upstream_unauthorized'],
    ['422', { kind: 'status', status: 422 } as GenerateBehavior, 'upstream_rejected'],
    ['a content-policy refusal', { kind: 'status', status: 400, body: '{"error":{"code":"content_policy_violation"}}' } as GenerateBehavior, 'content_policy_violation'],
  ])('%s is permanent: fails at once, no retry', async (_name, behavior, code) => {
    // a retry would get the default answer (ok) and complete, failing this test
    const r = await run(behavior);
    expect(r.generation).toMatchObject({ status: 'failed', attempts: 1, error: { code, retryable: false } });
    expect(r.calls).toBe(1);
  });

  it.each([
    ['an HTML page instead of an image', { kind: 'html' } as const, 'invalid_image'],
    ['a file over the byte limit (declared)', { kind: 'oversized', bytes: MAX_BYTES * 4, declareLength: true } as const, 'download_too_large'],
    ['a file over the byte limit (streamed, no length)', { kind: 'oversized', bytes: MAX_BYTES * 4, declareLength: false } as const, 'download_too_large'],
    ['a 20000×20000 PNG bomb', { kind: 'bomb' } as const, 'image_too_large'],
  ])('%s is refused with a clear code and not paid for again', async (_name, file, code) => {
    const r = await run({ kind: 'ok', file });
    expect(r.generation).toMatchObject({ status: 'failed', attempts: 1, error: { code, retryable: false } });
    expect(r.calls).toBe(1);
    expect(r.fetches).toEqual([200]);
  });

  it('a URL that is already gone asks the upstream again, counted as an attempt', async () => {
    const r = await run({ kind: 'ok', file: { kind: 'gone' } }, { kind: 'ok' });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 2 });
    expect(r.calls).toBe(2);
    expect(r.fetches).toEqual([404, 200]);
  });

  it('a download that fails transiently is retried from the checkpointed URL, without calling the upstream again', async () => {
    const r = await run({ kind: 'ok', file: { kind: 'flaky', failures: 1 } });
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 2 });
    expect(r.calls).toBe(1);
    expect(r.fetches).toEqual([503, 200]);
  });

  it('a download slower than the timeout is cut off (download_timeout) and retried', async () => {
    const r = await run({ kind: 'ok', file: { kind: 'slow', chunkDelayMs: 600 } }, { kind: 'ok' });
    // attempt 1 times out mid-body; attempt 2 retries the checkpointed URL, which the one-shot
    // host has already spent (404 → expired); attempt 3 asks the upstream again
    expect(r.generation).toMatchObject({ status: 'completed', attempts: 3 });
    expect(r.calls).toBe(2);
    expect(r.fetches).toEqual([200, 404, 200]);
    const record = await stack.api.store.get(r.generation.id);
    expect(record?.error).toBeUndefined();
    const job = await stack.api.queues.generate.getJob(r.generation.id);
    const { logs } = await stack.api.queues.generate.getJobLogs(job!.id!);
    expect(logs.join('\n')).toMatch(/download_timeout/);
  });

  it('the failure reason of a retrying attempt is visible while it waits', async () => {
    upstream.enqueue({ kind: 'status', status: 429, retryAfter: '2' }, { kind: 'ok' });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'watch me retry' });
    let seen: any;
    for (let i = 0; i < 40 && !seen; i++) {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      if (g.error?.code === 'upstream_rate_limited' && g.status === 'queued') seen = g;
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toMatchObject({ status: 'queued', error: { code: 'upstream_rate_limited', retryable: true } });
  });

  it('a retry handed out early (a worker whose clock runs ahead) still waits out Retry-After, by Redis time', async () => {
    const callsBefore = upstream.calls.length;
    upstream.enqueue({ kind: 'status', status: 429, retryAfter: '2' }, { kind: 'ok' });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'promoted early' });
    const queue = stack.api.queues.generate;
    // the retry waits in BullMQ's delayed set: a worker whose clock is two seconds ahead takes it as due now
    for (let i = 0; i < 500 && (await queue.getJobState(created.body.id)) !== 'delayed'; i++) await new Promise((r) => setTimeout(r, 20));
    await (await queue.getJob(created.body.id))!.promote();
    let final: any;
    for (let i = 0; i < 200 && final?.status !== 'completed'; i++) {
      final = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(final).toMatchObject({ status: 'completed', attempts: 2 });
    // (the test before may still have a retry of its own under way)
    const calls = upstream.calls.slice(callsBefore).filter((c) => (c.body as { topic?: string })?.topic === 'promoted early');
    expect(calls).toHaveLength(2);
    // before: the second call right after the promotion, well inside the 2 s asked for
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(1900);
  });
});
