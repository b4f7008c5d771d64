import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * Webhooks end to end: real API, real worker, a real receiver verifying every delivery with
 * standardwebhooks and the secret from GET /v1/webhooks/secret.
 */
const ALL_EVENTS = ['generation.started', 'generation.progress', 'generation.completed', 'generation.failed', 'generation.cancelled'];

describe('webhooks', () => {
  let upstream: FakeUpstream;
  let receiver: WebhookReceiver;
  let stack: Stack;
  let secret: string;

  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    receiver = await WebhookReceiver.start();
    stack = await startStack({
      name: 'webhooks',
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_SCALE: '0.01', GENERATOR_MAX_ATTEMPTS: '2' },
    });
    secret = (await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret;
    receiver.secrets = [secret];
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
    await upstream?.close();
  });

  const submit = async (path: string, extra: Record<string, unknown> = {}) => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `hook ${path}`, webhook: { url: receiver.url(path), ...extra } });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  const waitTerminal = (id: string) =>
    eventually(async () => {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body;
      return ['completed', 'failed', 'cancelled'].includes(g.status) ? g : undefined;
    });

  it('GET /v1/webhooks/secret gives the caller a whsec_ secret, the same every time', async () => {
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect((await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret).toBe(secret);
  });

  it('a completed generation delivers started, progress and completed, each verified, data equal to GET', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 600, file: { kind: 'slow', chunkDelayMs: 250 } });
    const id = await submit('/completed', { events: ALL_EVENTS });
    const final = await waitTerminal(id);
    expect(final.status).toBe('completed');
    const got = await eventually(async () => {
      const mine = receiver.on('/completed');
      return mine.some((r) => r.payload?.type === 'generation.completed') ? mine : undefined;
    });
    await sleep(300);
    const types = receiver.on('/completed').map((r) => r.payload?.type);
    expect(got.every((r) => r.verifiedWith.includes(0))).toBe(true);
    // each body is the envelope the OpenAPI document describes, data the GET's schema
    expect(receiver.on('/completed').map((r) => r.shapeError ?? 'ok')).toEqual(receiver.on('/completed').map(() => 'ok'));
    expect(types.filter((t) => t === 'generation.started')).toHaveLength(1);
    expect(types.filter((t) => t === 'generation.completed')).toHaveLength(1);
    expect(types).toContain('generation.progress');
    expect(types.indexOf('generation.started')).toBeLessThan(types.indexOf('generation.completed'));
    const completed = receiver.on('/completed').find((r) => r.payload.type === 'generation.completed')!;
    expect(completed.payload.data).toEqual(final);
    expect(Date.parse(completed.payload.timestamp)).toBeGreaterThanOrEqual(Date.parse(final.completedAt) - 1000);
    // each event is its own message
    const ids = receiver.on('/completed').map((r) => r.headers['webhook-id']);
    expect(new Set(ids).size).toBe(ids.length);
    // progress is a snapshot of that moment: below 100, rising
    const progress = receiver.on('/completed').filter((r) => r.payload.type === 'generation.progress').map((r) => r.payload.data.progress);
    expect(progress.every((p) => p > 0 && p < 100)).toBe(true);
  });

  it('metadata comes back as sent, a __proto__ key included: in the answer, the GET and the webhook', async () => {
    upstream.enqueue({ kind: 'ok' });
    const sent = '{"__proto__":{"x":1},"tags":[],"n":0.30000000000000004}';
    const res = await postJson(`${stack.baseUrl}/v1/generations`, `{"topic":"hook metadata","metadata":${sent},"webhook":{"url":"${receiver.url('/meta')}"}}`);
    expect(res.status).toBe(202);
    expect(JSON.stringify(res.body.metadata)).toBe(sent);
    const final = await waitTerminal(res.body.id as string);
    expect(JSON.stringify(final.metadata)).toBe(sent);
    const hook = await eventually(async () => receiver.on('/meta').find((r) => r.payload?.type === 'generation.completed'));
    expect(JSON.stringify(hook.payload.data.metadata)).toBe(sent);
  });

  it('a failed generation delivers started then failed, with data equal to GET', async () => {
    upstream.enqueue({ kind: 'status', status: 400, body: '{"error":"bad topic"}' });
    const id = await submit('/failed', { events: ALL_EVENTS });
    const final = await waitTerminal(id);
    expect(final.status).toBe('failed');
    await eventually(async () => (receiver.on('/failed').some((r) => r.payload?.type === 'generation.failed') ? true : undefined));
    const mine = receiver.on('/failed');
    expect(mine.every((r) => r.verifiedWith.includes(0))).toBe(true);
    expect(mine.map((r) => r.payload.type).filter((t: string) => t !== 'generation.progress')).toEqual(['generation.started', 'generation.failed']);
    expect(mine.at(-1)!.payload.data).toEqual(final);
  });

  it('started goes out once even when the generation is retried; without events only completed and failed', async () => {
    upstream.enqueue({ kind: 'status', status: 503 });
    const withStarted = await submit('/retried', { events: ['generation.started', 'generation.completed'] });
    upstream.enqueue({ kind: 'ok' });
    const plain = await submit('/default');
    expect((await waitTerminal(withStarted)).attempts).toBe(2);
    await waitTerminal(plain);
    await eventually(async () => (receiver.on('/retried').length >= 2 && receiver.on('/default').length >= 1 ? true : undefined));
    await sleep(500);
    expect(receiver.on('/retried').map((r) => r.payload.type)).toEqual(['generation.started', 'generation.completed']);
    expect(receiver.on('/default').map((r) => r.payload.type)).toEqual(['generation.completed']);
  });

  it('a cancelled generation delivers generation.cancelled', async () => {
    upstream.enqueue({ kind: 'hang' });
    const id = await submit('/cancelled', { events: ['generation.cancelled'] });
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body.status === 'active' ? true : undefined));
    const res = await fetch(`${stack.baseUrl}/v1/generations/${id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    await eventually(async () => (receiver.on('/cancelled').length ? true : undefined));
    const [got] = receiver.on('/cancelled');
    expect(got!.payload.type).toBe('generation.cancelled');
    expect(got!.payload.data).toEqual((await getJson(`${stack.baseUrl}/v1/generations/${id}`)).body);
  });

  it('GET /deliveries lists each attempt; redeliver sends the same webhook-id and body again', async () => {
    const id = await submit('/log');
    await waitTerminal(id);
    await eventually(async () => (receiver.on('/log').length ? true : undefined));
    const log = await eventually(async () => {
      const rows = (await getJson(`${stack.baseUrl}/v1/generations/${id}/deliveries`)).body.data;
      return rows.length && rows[0].state === 'delivered' ? rows : undefined;
    });
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ event: 'generation.completed', attempt: 1, status: 200, state: 'delivered', webhookId: receiver.on('/log')[0]!.headers['webhook-id'] });
    expect(log[0].durationMs).toEqual(expect.any(Number));

    const again = await postJson(`${stack.baseUrl}/v1/generations/${id}/deliveries/${log[0].id}/redeliver`, undefined);
    expect(again.status).toBe(202);
    await eventually(async () => (receiver.on('/log').length === 2 ? true : undefined));
    const [first, second] = receiver.on('/log');
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(second!.body).toBe(first!.body);
    expect(second!.verifiedWith).toEqual([0]);
    const rows = await eventually(async () => {
      const r = (await getJson(`${stack.baseUrl}/v1/generations/${id}/deliveries`)).body.data;
      return r.length === 2 && r[1].state === 'delivered' ? r : undefined;
    });
    expect(rows.map((r: any) => r.attempt)).toEqual([1, 2]);

    // it takes no options: a body that is not empty is refused, and nothing is sent
    const redeliverUrl = `${stack.baseUrl}/v1/generations/${id}/deliveries/${log[0].id}/redeliver`;
    await expectRefusedBodies(redeliverUrl);
    expect((await getJson(`${stack.baseUrl}/v1/generations/${id}/deliveries`)).body.data).toHaveLength(2);
    expect(receiver.on('/log')).toHaveLength(2);

    expect((await postJson(`${stack.baseUrl}/v1/generations/${id}/deliveries/dlv_nosuch/redeliver`, undefined)).status).toBe(404);
    expect((await getJson(`${stack.baseUrl}/v1/generations/gen_nosuch/deliveries`)).status).toBe(404);
  });

  it('after a rotation both secrets sign for the overlap, so a receiver holding either verifies', async () => {
    // it takes no options: a body that is not empty is refused, and the secret stays
    await expectRefusedBodies(`${stack.baseUrl}/v1/webhooks/secret/rotate`);
    expect((await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret).toBe(secret);
    const rotated = await postJson(`${stack.baseUrl}/v1/webhooks/secret/rotate`, {});
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.secret as string;
    expect(fresh).toMatch(/^whsec_/);
    expect(fresh).not.toBe(secret);
    expect((await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret).toBe(fresh);
    // the overlap is 24 h, by Redis's clock: the old version signs until then, and its key goes then
    const retired = stack.api.keys.webhookSecretRetired('default');
    const [seconds, micros] = (await stack.redis.time()).map(Number) as [number, number];
    const now = seconds * 1000 + Math.floor(micros / 1000);
    const [, until] = (await stack.redis.zrange(retired, 0, '-1', 'WITHSCORES')).flat();
    const ttl = await stack.redis.pttl(retired);
    const day = 24 * 3600_000;
    expect(Number(until) - now).toBeGreaterThan(day - 60_000);
    expect(Number(until) - now).toBeLessThanOrEqual(day);
    expect(Number(ttl)).toBeGreaterThan(day - 60_000);
    expect(Number(ttl)).toBeLessThanOrEqual(day);
    receiver.secrets = [secret, fresh];
    try {
      const id = await submit('/rotated');
      await waitTerminal(id);
      await eventually(async () => (receiver.on('/rotated').length ? true : undefined));
      const [got] = receiver.on('/rotated');
      expect(got!.headers['webhook-signature']!.split(' ')).toHaveLength(2);
      // index 0: a receiver still on the old secret; index 1: one already on the new secret
      expect(got!.verifiedWith).toEqual([0, 1]);
    } finally {
      secret = fresh;
      receiver.secrets = [fresh];
    }
  });
});

/** A POST that takes no options refuses malformed JSON and fields (400) and other media types (415), each as problem+json. */
async function expectRefusedBodies(url: string): Promise<void> {
  const post = (type: string, body: string) => fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body });
  for (const [type, body, status] of [
    ['application/json', '{bad', 400],
    ['application/json', '{"unknown":1}', 400],
    ['application/json', '[]', 400],
    ['text/plain', 'x', 415],
  ] as const) {
    const res = await post(type, body);
    expect([body, res.status]).toEqual([body, status]);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  }
  const named = (await (await post('application/json', '{"unknown":1}')).json()) as { errors?: { path: string }[] };
  expect(named.errors?.map((e) => e.path)).toEqual(['unknown']);
}

describe('webhooks from a worker that is not told PUBLIC_BASE_URL', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack({ name: 'webhooks-base', worker: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
    // the API is told where it is; the worker has neither PUBLIC_BASE_URL nor the API's PORT
    await stack.startWorker({ PUBLIC_BASE_URL: '', PORT: '4999' });
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  it('sends the file URLs the API hands out: data equal to GET', async () => {
    const made = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'where am I', webhook: { url: receiver.url('/base') } }, { Prefer: 'wait=60' });
    expect(made.body.status).toBe('completed');
    const got = await eventually(async () => receiver.on('/base').find((r) => r.payload?.type === 'generation.completed'));
    // before: http://localhost:4999/files/… in the webhook, the API's address in the GET
    expect(got.payload.data.result.image.url.startsWith(`${stack.baseUrl}/files/`)).toBe(true);
    expect(got.payload.data).toEqual((await getJson(`${stack.baseUrl}/v1/generations/${made.body.id}`)).body);
  });
});
