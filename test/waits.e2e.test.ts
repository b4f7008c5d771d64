import { eventually, sleep } from './support/net';
import { startStack, type Stack } from './support/stack';

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('waiting requests leave nothing behind', () => {
  let stack: Stack;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  beforeAll(async () => {
    // no worker: every generation stays queued, so every wait runs to its end or its abort
    stack = await startStack({ name: 'waits', worker: false, env: { RATE_LIMIT_PER_MINUTE: '10000' } });
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await stack.close();
  });

  const wait = (signal?: AbortSignal) =>
    fetch(`${stack.baseUrl}/v1/generations`, { method: 'POST', headers: { 'Content-Type': 'application/json', Prefer: 'wait=30' }, body: JSON.stringify({ topic: 'patience' }), ...(signal ? { signal } : {}) });

  it('50 abandoned Prefer: wait requests free their timers, subscriptions and listeners', async () => {
    const baseline = timers();
    const clients = Array.from({ length: 50 }, () => new AbortController());
    const requests = clients.map((c) => wait(c.signal).catch(() => 'aborted'));
    await eventually(async () => (stack.api.waits.size === 50 ? true : undefined));
    // every wait is on the process's one channel: no subscription of its own
    const channels = stack.api.hub.channels;
    expect(stack.api.waiterChannel.isReady).toBe(true);
    expect(stack.api.waiterChannel.size).toBe(50);
    expect(channels).toBe(1);
    for (const c of clients) c.abort();
    expect(await Promise.all(requests)).toEqual(clients.map(() => 'aborted'));
    await eventually(async () => (stack.api.waits.size === 0 && stack.api.waiterChannel.size === 0 && stack.api.hub.channels === channels ? true : undefined));
    await sleep(100);
    expect(timers()).toBeLessThan(baseline + 10);
  });

  it('shutdown answers 50 waiting requests at once with one listener, and no leak warning', async () => {
    const requests = Array.from({ length: 50 }, () => wait());
    await eventually(async () => (stack.api.waits.size === 50 ? true : undefined));
    const t0 = Date.now();
    stack.api.beginShutdown();
    const answers = await Promise.all(requests);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    const bodies = (await Promise.all(answers.map((a) => a.json()))) as Array<{ status: string }>;
    expect(bodies.every((b) => b.status === 'queued')).toBe(true);
    expect(stack.api.waits.size).toBe(0);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('streams asked for once shutdown has begun end at once and subscribe to nothing', async () => {
    // (runs after the test above: this process is shutting down, and its requests are still answered)
    const post = async (path: string, body: unknown) => (await (await fetch(`${stack.baseUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })).json()) as { id: string };
    const generation = await post('/v1/generations', { topic: 'too late to watch' });
    const batch = await post('/v1/batches', { items: [{ topic: 'too late to watch' }] });
    const channels = stack.api.hub.channels;
    for (const path of [`/v1/generations/${generation.id}/events`, `/v1/batches/${batch.id}/events`]) {
      const res = await fetch(`${stack.baseUrl}${path}`, { signal: AbortSignal.timeout(2000) });
      // the whole answer, at once, as an event stream that ends: a client (an EventSource, the
      // CLI) reconnects, to a process that is not going away (before: an empty 200 of no type,
      // which the CLI took for another server and gave up on, and an EventSource stops at)
      expect([res.status, res.headers.get('content-type'), await res.text().catch((err: Error) => err.name)]).toEqual([200, 'text/event-stream; charset=utf-8', 'retry: 1000\n\n']);
    }
    expect([stack.api.waits.size, stack.api.hub.channels]).toEqual([0, channels]);
    // a batch's results: cut at once, unfinished (before: held open until the process exited)
    const results = fetch(`${stack.baseUrl}/v1/batches/${batch.id}/results`, { signal: AbortSignal.timeout(2000) }).then((res) => res.text());
    expect(await results.then(() => 'whole', (err: Error) => err.name)).toBe('TypeError');
  });
});
