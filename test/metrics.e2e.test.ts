import { appendBatchEvent, keysFor } from '@imagegen/shared';
import { eventually, freePort } from './support/net';
import { ADMIN, postJson, startStack, type Stack } from './support/stack';

/** `/metrics` of the API behind the operator credentials, and each worker's own metrics port. */

const basic = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;

/** The value of one series (`name{labels}`) in Prometheus text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

describe('metrics', () => {
  let stack: Stack;
  let workerMetricsUrl: string;

  beforeAll(async () => {
    stack = await startStack({ name: 'metrics', worker: false });
    const port = await freePort();
    await stack.startWorker({ METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' });
    workerMetricsUrl = `http://127.0.0.1:${port}/metrics`;
  });
  afterAll(async () => stack?.close());

  const scrape = async () => {
    const res = await fetch(`${stack.baseUrl}/metrics`, { headers: { authorization: basic } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    return res.text();
  };

  it('answers 401 without the operator credentials, and with wrong ones', async () => {
    expect((await fetch(`${stack.baseUrl}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${stack.baseUrl}/metrics`, { headers: { authorization: `Basic ${Buffer.from(`${ADMIN.user}:nope`).toString('base64')}` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('content-type')).toMatch(/problem\+json/);
  });

  it('names queue depth for every queue, request counts, and process metrics; they move after a generation', async () => {
    const before = await scrape();
    for (const queue of ['generate', 'maintenance', 'webhooks']) expect(sample(before, 'imagegen_queue_jobs', { queue, state: 'waiting' })).toBeDefined();
    expect(sample(before, 'process_cpu_user_seconds_total')).toBeDefined();
    expect(sample(before, 'imagegen_queue_workers', { queue: 'generate' })).toBeGreaterThanOrEqual(1);
    // the webhook outbox, read from Redis at scrape time: nothing waits while the worker dispatches
    expect([sample(before, 'imagegen_webhook_outbox_events', { state: 'waiting' }), sample(before, 'imagegen_webhook_outbox_events', { state: 'dispatching' })]).toEqual([0, 0]);
    expect(sample(before, 'imagegen_webhook_outbox_oldest_seconds')).toBe(0);
    const postsBefore = sample(before, 'imagegen_http_requests_total', { method: 'POST', route: '/v1/generations', status: '202' }) ?? 0;

    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'a metered lighthouse' }, { prefer: 'wait=30' });
    expect(res.status).toBe(200);

    const after = await scrape();
    // the 200 of a finished wait counts under its own status
    const posts = (sample(after, 'imagegen_http_requests_total', { method: 'POST', route: '/v1/generations', status: '200' }) ?? 0) + (sample(after, 'imagegen_http_requests_total', { method: 'POST', route: '/v1/generations', status: '202' }) ?? 0);
    expect(posts).toBe(postsBefore + 1);
    expect(sample(after, 'imagegen_http_request_duration_seconds_count', { method: 'POST', route: '/v1/generations', status: '200' })).toBe(1);
    expect(sample(after, 'imagegen_queue_jobs', { queue: 'generate', state: 'completed' })).toBeGreaterThanOrEqual(1);
  });

  it('a 404 from a route with an id counts under that route template, not a bare `/:id`', async () => {
    expect((await fetch(`${stack.baseUrl}/v1/generations/gen_unknown1`)).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}/v1/batches/batch_unknown1`)).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}/v1/generations/gen_unknown2/deliveries`)).status).toBe(404);
    const text = await scrape();
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/generations/:id', status: '404' })).toBe(1);
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/batches/:id', status: '404' })).toBe(1);
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/generations/:id/deliveries', status: '404' })).toBe(1);
    expect(sample(text, 'imagegen_http_requests_total', { route: '/:id' })).toBeUndefined();
    expect(text).not.toMatch(/unknown1|unknown2/);
  });

  it('a path spelled in other cases counts under the route as written: no series for each spelling', async () => {
    for (const path of ['/V1/GeNeRaTiOnS/gen_case1', '/v1/GENERATIONS/gen_case2', '/V1/Generations/gen_case3/Deliveries']) expect((await fetch(`${stack.baseUrl}${path}`)).status).toBe(404);
    expect((await fetch(`${stack.baseUrl}/V1/generationS`)).status).toBe(200);
    const text = await scrape();
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/generations/:id', status: '404' })).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/generations/:id/deliveries', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_http_requests_total', { method: 'GET', route: '/v1/generations', status: '200' })).toBeGreaterThanOrEqual(1);
    // before: route="/V1/GeNeRaTiOnS/:id" and the like, a series each
    expect(text).not.toMatch(/route="[^"]*[A-Z]/);
  });

  it("a worker's metrics port answers with its own series, moved by the generation", async () => {
    const res = await fetch(workerMetricsUrl);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sample(text, 'imagegen_upstream_requests_total', { provider: 'builtin', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_upstream_duration_seconds_count', { provider: 'builtin', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_stage_duration_seconds_count', { stage: 'generating' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_stage_duration_seconds_count', { stage: 'processing' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_thumbnail_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'imagegen_job_duration_seconds_count', { queue: 'generate', outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // a worker does not read the outbox: no figure for it rather than a 0 beside the API's
    expect(text).not.toMatch(/^imagegen_webhook_outbox_/m);
    expect((await fetch(workerMetricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });
});

describe('metrics of the webhook outbox', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'metrics-outbox', worker: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
  });
  afterAll(async () => stack?.close());

  it('counts events waiting while no worker dispatches, with the age of the oldest, and drops to 0 once one does', async () => {
    const scrape = async () => (await fetch(`${stack.baseUrl}/metrics`, { headers: { authorization: basic } })).text();
    const keys = keysFor(stack.prefix);
    for (let i = 0; i < 3; i++) await appendBatchEvent(stack.redis, keys, { batchId: `batch_m${i}`, tenant: 'default', type: 'batch.completed', target: { url: 'http://127.0.0.1:9/hook' }, data: { id: `batch_m${i}` } });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const stalled = await scrape();
    expect([sample(stalled, 'imagegen_webhook_outbox_events', { state: 'waiting' }), sample(stalled, 'imagegen_webhook_outbox_events', { state: 'dispatching' })]).toEqual([3, 0]);
    expect(sample(stalled, 'imagegen_webhook_outbox_oldest_seconds')).toBeGreaterThanOrEqual(1);
    // a worker starts: the events become deliveries (refused connections, so each is handed to a job) and leave the outbox
    await stack.startWorker();
    const drained = await eventually(async () => {
      const text = await scrape();
      return sample(text, 'imagegen_webhook_outbox_events', { state: 'waiting' }) === 0 && sample(text, 'imagegen_webhook_outbox_events', { state: 'dispatching' }) === 0 ? text : undefined;
    });
    expect(sample(drained, 'imagegen_webhook_outbox_oldest_seconds')).toBe(0);
  });
});
