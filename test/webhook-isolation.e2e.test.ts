import { type GenerationRecord } from '@imagegen/shared';
import { generationRecord, TINY_RESULT } from './support/records';
import { eventually } from './support/net';
import { getJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * One endpoint that hangs must not hold up deliveries to others: 200 events for a hanging host and
 * 200 for a healthy one, at once. The events come from real record transitions (the outbox path);
 * the generations' image work is skipped, since it is not what is measured.
 */
const N = 200;
const BOUND = 10;

describe('webhook isolation between endpoints', () => {
  let hanging: WebhookReceiver;
  let healthy: WebhookReceiver;
  let stack: Stack;

  beforeAll(async () => {
    hanging = await WebhookReceiver.start();
    healthy = await WebhookReceiver.start();
    hanging.script('/slow', 'hang');
    stack = await startStack({
      name: 'webhook-isolation',
      env: { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '3000', WEBHOOK_MAX_IN_FLIGHT_PER_HOST: String(BOUND), WEBHOOK_RETRY_SCALE: '0.001' },
    });
    healthy.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([hanging?.close(), healthy?.close()]);
  });

  const record = (url: string): GenerationRecord => generationRecord({ request: { topic: 'isolation', style: 'PHOTOGRAPHIC', size: 'SQUARE' }, webhook: { url } });


  it('the healthy endpoint gets all its deliveries within seconds; the hanging one never has more than its bound in flight', async () => {
    const records = Array.from({ length: N }, () => [record(hanging.url('/slow')), record(healthy.url('/fast'))]).flat();
    for (const r of records) await stack.api.store.create(r);
    const result = TINY_RESULT;
    const t0 = Date.now();
    await Promise.all(records.map((r) => stack.api.store.complete(r, result)));

    await eventually(async () => (healthy.on('/fast').length >= N ? true : undefined), 60_000, 100);
    const healthyDoneMs = Math.max(...healthy.on('/fast').map((r) => r.at)) - t0;
    const arrivals = healthy.on("/fast").map((r) => r.at - t0).sort((a, b) => a - b);
    process.stdout.write(`[isolation] healthy arrivals: first ${arrivals[0]} ms, median ${arrivals[N >> 1]} ms; ${N} healthy deliveries done ${healthyDoneMs} ms after the events; hanging host: ${hanging.on('/slow').length} requests, at most ${hanging.maxInFlight.get('/slow')} at once\n`);
    expect(healthyDoneMs).toBeLessThan(15_000);
    expect(healthy.on('/fast')).toHaveLength(N);
    expect(new Set(healthy.on('/fast').map((r) => r.headers['webhook-id'])).size).toBe(N);
    expect(healthy.on('/fast').every((r) => r.verifiedWith.includes(0))).toBe(true);
    // the hanging host was tried, up to its bound and never past it
    expect(hanging.maxInFlight.get('/slow')).toBeGreaterThanOrEqual(2);
    expect(hanging.maxInFlight.get('/slow')).toBeLessThanOrEqual(BOUND);
  });
});

/**
 * More hanging hosts than the worker's places can hold (8 × 10 slots, 50 places): the healthy
 * host must still not wait for their timeouts. The timeout is long, so waiting for it would show.
 */
const HANGING_HOSTS = 8;
const TIMEOUT_MS = 20_000;

describe('webhook isolation from many hanging endpoints', () => {
  let hanging: WebhookReceiver[];
  let healthy: WebhookReceiver;
  let stack: Stack;

  beforeAll(async () => {
    hanging = await Promise.all(Array.from({ length: HANGING_HOSTS }, () => WebhookReceiver.start()));
    for (const h of hanging) h.script('/slow', 'hang');
    healthy = await WebhookReceiver.start();
    // the defaults for places (WEBHOOK_CONCURRENCY 50) and slots per host (10)
    stack = await startStack({ name: 'webhook-isolation-many', env: { WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) } });
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([...(hanging ?? []), healthy].map((r) => r?.close()));
  });

  it('the healthy endpoint gets its deliveries long before the hanging ones time out, and every hanging host is tried', async () => {
    const PER_HANGING = 30;
    const HEALTHY = 200;
    const record = (url: string): GenerationRecord => generationRecord({ request: { topic: 'isolation', style: 'PHOTOGRAPHIC', size: 'SQUARE' }, webhook: { url } });
    // the hanging hosts' events first, so they are read and started first
    const records = [...Array.from({ length: PER_HANGING }, () => hanging.map((h) => record(h.url('/slow')))).flat(), ...Array.from({ length: HEALTHY }, () => record(healthy.url('/fast')))];
    for (const r of records) await stack.api.store.create(r);
    const t0 = Date.now();
    await Promise.all(records.map((r) => stack.api.store.complete(r, TINY_RESULT)));

    await eventually(async () => (healthy.on('/fast').length >= HEALTHY ? true : undefined), 60_000, 100);
    const arrivals = healthy.on('/fast').map((r) => r.at - t0).sort((a, b) => a - b);
    const tried = hanging.map((h) => h.maxInFlight.get('/slow') ?? 0);
    process.stdout.write(`[isolation, ${HANGING_HOSTS} hanging hosts] healthy arrivals: median ${arrivals[HEALTHY >> 1]} ms, last ${arrivals.at(-1)} ms; in flight at most per hanging host: ${tried.join(', ')}\n`);
    expect(healthy.on('/fast')).toHaveLength(HEALTHY);
    // waiting for the hanging hosts would take the timeout
    expect(arrivals.at(-1)).toBeLessThan(TIMEOUT_MS / 2);
    // none was left untried behind the others, and none went past its bound
    for (const n of tried) expect(n).toBeGreaterThanOrEqual(1);
    for (const n of tried) expect(n).toBeLessThanOrEqual(10);
  }, 90_000);
});
