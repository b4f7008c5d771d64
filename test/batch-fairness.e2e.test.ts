import sharp from 'sharp';
import type { GeneratorProvider } from '@imagegen/shared';
import { eventually, sleep } from './support/net';
import { getJson, startStack, type Stack } from './support/stack';

/**
 * Fairness with an instant upstream: a huge batch of one tenant never starves a later small
 * batch of another tenant, nor a single generation. Asserted as relative progress, not times.
 */
describe('fair scheduling of batches', () => {
  let stack: Stack;
  const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
  beforeAll(async () => {
    stack = await startStack({ name: 'fairness', worker: false, env: { RATE_LIMIT_PER_MINUTE: '100000', API_KEYS: 'tenant-a:key-a,tenant-b:key-b,tenant-c:key-c' } });
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#884422' } }).png().toBuffer();
    const provider: GeneratorProvider = { name: 'builtin', generate: async () => ({ kind: 'bytes', data: png, contentType: 'image/png' }) };
    await stack.startWorker({ WORKER_CONCURRENCY: '16', BATCH_FEED_WINDOW: '64', BATCH_FEED_INTERVAL_MS: '50', THUMBNAIL_SIZES: '16' }, { provider });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const submit = async (key: string, topics: string[]) => {
    const res = await fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { ...auth(key), 'Content-Type': 'application/json' }, body: JSON.stringify({ items: topics.map((topic) => ({ topic })) }) });
    expect(res.status).toBe(202);
    return (await res.json()) as { id: string };
  };
  const batch = async (key: string, id: string) => (await getJson(`${stack.baseUrl}/v1/batches/${id}`, auth(key))).body;

  it('a later small batch of another tenant and a single generation finish long before a 20,000-item batch', async () => {
    const a = await submit('key-a', Array.from({ length: 20_000 }, (_, i) => `a ${i}`));
    await sleep(5000);
    const aAtStart = (await batch('key-a', a.id)).counts.completed;
    expect(aAtStart).toBeGreaterThan(0);

    const b = await submit('key-b', Array.from({ length: 200 }, (_, i) => `b ${i}`));
    const single = await fetch(`${stack.baseUrl}/v1/generations`, { method: 'POST', headers: { ...auth('key-c'), 'Content-Type': 'application/json', Prefer: 'wait=60' }, body: JSON.stringify({ topic: 'single' }) });
    expect(((await single.json()) as { status: string }).status).toBe('completed');
    const aWhenSingleDone = (await batch('key-a', a.id)).counts.completed;

    const firstB = await eventually(async () => ((await batch('key-b', b.id)).counts.completed > 0 ? true : undefined), 60_000, 50);
    expect(firstB).toBe(true);
    const aWhenFirstB = (await batch('key-a', a.id)).counts.completed;

    const bDone = await eventually(async () => {
      const x = await batch('key-b', b.id);
      return x.status === 'completed' ? x : undefined;
    }, 110_000, 100);
    const aWhenBDone = await batch('key-a', a.id);
    expect(bDone.counts.completed).toBe(200);
    expect(aWhenBDone.status).toBe('in_progress');
    // B's 200 items took no longer than A needed for a small share of its own: B was not queued behind A
    expect(aWhenBDone.counts.completed - aWhenFirstB).toBeLessThan(2000);
    expect(aWhenBDone.counts.completed).toBeLessThan(10_000);
    // the single generation and B's first item came while A had most of its batch still ahead
    expect(aWhenSingleDone).toBeLessThan(10_000);
    expect(aWhenFirstB).toBeLessThan(10_000);

    const cancelled = await fetch(`${stack.baseUrl}/v1/batches/${a.id}`, { method: 'DELETE', headers: auth('key-a') });
    expect(cancelled.status).toBe(200);
    const aEnd = await eventually(async () => {
      const x = await batch('key-a', a.id);
      return x.status === 'completed' ? x : undefined;
    }, 60_000, 200);
    expect(aEnd.counts.completed + aEnd.counts.cancelled + aEnd.counts.failed).toBe(20_000);
    // another tenant's batch reads as unknown
    expect((await getJson(`${stack.baseUrl}/v1/batches/${a.id}`, auth('key-b'))).status).toBe(404);
  });
});

/**
 * The window is full of one tenant's items already waiting in the queue when another tenant's
 * small batch comes: its items pass them (they rank by their tenant's items in flight when
 * released), rather than wait for the whole window to drain.
 */
describe('fair scheduling: a small batch passes the items already queued for another tenant', () => {
  let stack: Stack;
  const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
  beforeAll(async () => {
    stack = await startStack({ name: 'fairness-queued', worker: false, env: { RATE_LIMIT_PER_MINUTE: '100000', API_KEYS: 'tenant-a:key-a,tenant-b:key-b' } });
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#224488' } }).png().toBuffer();
    // 50 ms per generation, 2 at once: 40 queued items take a second to drain
    const provider: GeneratorProvider = { name: 'builtin', generate: async () => (await sleep(50), { kind: 'bytes', data: png, contentType: 'image/png' }) };
    await stack.startWorker({ WORKER_CONCURRENCY: '2', BATCH_FEED_WINDOW: '40', BATCH_FEED_INTERVAL_MS: '50', THUMBNAIL_SIZES: '16' }, { provider });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const submit = async (key: string, count: number, name: string) => {
    const res = await fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { ...auth(key), 'Content-Type': 'application/json' }, body: JSON.stringify({ items: Array.from({ length: count }, (_, i) => ({ topic: `${name} ${i}` })) }) });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };
  const counts = async (key: string, id: string) => (await getJson(`${stack.baseUrl}/v1/batches/${id}`, auth(key))).body.counts as { completed: number; queued: number };

  it("the second tenant's items start before the first tenant's queued ones", async () => {
    const a = await submit('key-a', 1000, 'a');
    // past the first burst: the window is full and a's items wait in the queue
    await eventually(async () => ((await counts('key-a', a)).completed >= 60 ? true : undefined), 30_000, 50);
    expect((await counts('key-a', a)).queued).toBeGreaterThanOrEqual(30);
    const aBefore = (await counts('key-a', a)).completed;
    const b = await submit('key-b', 2, 'b');
    await eventually(async () => ((await counts('key-b', b)).completed === 2 ? true : undefined), 30_000, 20);
    const aMeanwhile = (await counts('key-a', a)).completed - aBefore;
    process.stdout.write(`[fairness-queued] a completed ${aMeanwhile} items while b's 2 waited and ran (window 40, 2 at once)\n`);
    // without passing, b's items would wait behind about 38 of a's
    expect(aMeanwhile).toBeLessThanOrEqual(10);
    await fetch(`${stack.baseUrl}/v1/batches/${a}`, { method: 'DELETE', headers: auth('key-a') });
  }, 60_000);
});
