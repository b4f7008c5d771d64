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
