import { eventually, sleep } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * Retries against a real receiver: the schedule (scaled), Retry-After, 410, timeouts, exhaustion;
 * one webhook-id and one body for every attempt; the generation's outcome never changes.
 */
const KEYS = { a: 'key-tenant-a-0123456789', b: 'key-tenant-b-0123456789' };
const asA = { Authorization: `Bearer ${KEYS.a}` };
const asB = { Authorization: `Bearer ${KEYS.b}` };

async function setup(name: string, env: Record<string, string>) {
  const receiver = await WebhookReceiver.start();
  const stack = await startStack({ name, env: { WEBHOOK_ALLOW_PRIVATE: 'true', API_KEYS: `a:${KEYS.a},b:${KEYS.b}`, ...env } });
  receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`, asA)).body.secret];
  return { receiver, stack };
}

function helpers(get: () => { stack: Stack; receiver: WebhookReceiver }) {
  const submit = async (path: string) => {
    const { stack, receiver } = get();
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `retry ${path}`, webhook: { url: receiver.url(path) } }, asA);
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const deliveries = async (id: string, headers = asA) => (await getJson(`${get().stack.baseUrl}/v1/generations/${id}/deliveries`, headers)).body.data as any[];
  const settled = (id: string) =>
    eventually(async () => {
      const rows = await deliveries(id);
      return rows.length && rows.at(-1).state !== 'pending' ? rows : undefined;
    }, 60_000);
  return { submit, deliveries, settled };
}

describe('webhook retries', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;
  const { submit, settled } = helpers(() => ({ stack, receiver }));

  beforeAll(async () => {
    ({ receiver, stack } = await setup('webhook-retries', { WEBHOOK_RETRY_SCALE: '0.2', WEBHOOK_TIMEOUT_MS: '1000' }));
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  it('500, 500, then 200: three attempts, one webhook-id and body, rising gaps; the log shows each', async () => {
    receiver.script('/flaky', 500, 500, 200);
    const id = await submit('/flaky');
    const rows = await settled(id);
    const got = receiver.on('/flaky');
    expect(got.map((r) => r.answeredWith)).toEqual([500, 500, 200]);
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(got.map((r) => r.body)).size).toBe(1);
    expect(got.every((r) => r.verifiedWith.includes(0))).toBe(true);
    const [g1, g2] = [got[1]!.at - got[0]!.at, got[2]!.at - got[1]!.at];
    // the schedule: immediately, then 5 s × 0.2 (±20 %)
    expect(g2).toBeGreaterThan(g1);
    expect(g2).toBeGreaterThanOrEqual(800);
    expect(rows.map((r) => [r.attempt, r.status, r.state])).toEqual([
      [1, 500, 'failed'],
      [2, 500, 'failed'],
      [3, 200, 'delivered'],
    ]);
    expect(rows[0].nextAttemptAt).toEqual(expect.any(String));
    expect(rows[2].nextAttemptAt).toBeUndefined();
    expect(new Set(rows.map((r) => r.webhookId))).toEqual(new Set([got[0]!.headers['webhook-id']]));
  });

  it('the immediate first retry is made at once by the dispatcher, not through the queue', async () => {
    // with the webhooks queue paused, only what the dispatcher sends itself goes out
    await stack.api.queues.webhooks.pause();
    try {
      receiver.script('/twice', 500, 200);
      const id = await submit('/twice');
      const rows = await settled(id);
      expect(rows.map((r) => [r.attempt, r.status, r.state])).toEqual([
        [1, 500, 'failed'],
        [2, 200, 'delivered'],
      ]);
      expect(receiver.on('/twice').map((r) => r.answeredWith)).toEqual([500, 200]);
    } finally {
      await stack.api.queues.webhooks.resume();
    }
  });

  it('410 stops the delivery at once', async () => {
    receiver.script('/gone', 410);
    const id = await submit('/gone');
    const rows = await settled(id);
    await sleep(1500);
    expect(receiver.on('/gone')).toHaveLength(1);
    expect(rows).toEqual([expect.objectContaining({ attempt: 1, status: 410, state: 'failed' })]);
  });

  it('a receiver that hangs is cut at the timeout and retried', async () => {
    receiver.script('/hang', 'hang', 200);
    const id = await submit('/hang');
    const rows = await settled(id);
    expect(receiver.on('/hang').map((r) => r.answeredWith)).toEqual(['hang', 200]);
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed', error: expect.stringMatching(/timed out/) });
    expect(rows[0].status).toBeUndefined();
    expect(rows[0].durationMs).toBeGreaterThanOrEqual(900);
    expect(rows[1]).toMatchObject({ attempt: 2, status: 200, state: 'delivered' });
  });

  it('a longer Retry-After is honoured', async () => {
    receiver.script('/busy', { status: 503, headers: { 'Retry-After': '2' } }, 200);
    const id = await submit('/busy');
    await settled(id);
    const got = receiver.on('/busy');
    expect(got).toHaveLength(2);
    // the schedule alone would retry immediately
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(1900);
  });

  it('redirects are not followed: a 3xx is a failed attempt', async () => {
    receiver.script('/moved', { status: 301, headers: { Location: receiver.url('/elsewhere') } }, 200);
    const id = await submit('/moved');
    const rows = await settled(id);
    expect(receiver.on('/elsewhere')).toHaveLength(0);
    expect(rows.map((r) => [r.status, r.state])).toEqual([
      [301, 'failed'],
      [200, 'delivered'],
    ]);
  });

  it("another tenant's generation has no deliveries to show or redeliver (404, as unknown)", async () => {
    const id = await submit('/private');
    const [row] = await settled(id);
    const other = await getJson(`${stack.baseUrl}/v1/generations/${id}/deliveries`, asB);
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect((await postJson(`${stack.baseUrl}/v1/generations/${id}/deliveries/${row.id}/redeliver`, undefined, asB)).status).toBe(404);
    expect((await getJson(`${stack.baseUrl}/v1/webhooks/secret`, asB)).body.secret).not.toBe(receiver.secrets[0]);
    expect(receiver.on('/private')).toHaveLength(1);
  });
});

describe('webhook retries, exhausted', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;
  const { submit, settled } = helpers(() => ({ stack, receiver }));

  beforeAll(async () => {
    // the whole schedule (about 27.6 h) in about 10 s
    ({ receiver, stack } = await setup('webhook-exhausted', { WEBHOOK_RETRY_SCALE: '0.0001' }));
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  it('a receiver that never answers 2xx ends exhausted after the schedule; the generation stays completed', async () => {
    receiver.script('/never', 500);
    const id = await submit('/never');
    const rows = await settled(id);
    expect(rows).toHaveLength(9);
    expect(rows.map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rows.slice(0, 8).every((r) => r.state === 'failed' && r.nextAttemptAt)).toBe(true);
    expect(rows[8]).toMatchObject({ state: 'exhausted', status: 500 });
    expect(rows[8].nextAttemptAt).toBeUndefined();
    expect(receiver.on('/never')).toHaveLength(9);
    expect(new Set(receiver.on('/never').map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect((await getJson(`${stack.baseUrl}/v1/generations/${id}`, asA)).body.status).toBe('completed');
  });

  it('deliveries enough to open the host’s circuit still end exhausted on the scaled schedule', async () => {
    receiver.script('/down', 503);
    // 4 × 9 failures in a row: the circuit (20) opens, and each failed probe opens it again
    const ids = await Promise.all([1, 2, 3, 4].map(() => submit('/down')));
    for (const id of ids) {
      const rows = await settled(id);
      expect(rows.at(-1)).toMatchObject({ attempt: 9, state: 'exhausted', status: 503 });
    }
    expect(receiver.on('/down')).toHaveLength(36);
  });
});
