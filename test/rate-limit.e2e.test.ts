import { FakeUpstream } from './support/fake-upstream';
import { eventually } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const WINDOW_MS = 1000;

describe('global upstream rate limit shared by every worker', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'limiter',
      worker: false,
      env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_RATE_LIMIT_MAX: '2', GENERATOR_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS), GENERATOR_BACKOFF_MS: '100' },
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

  it('never exceeds 2 upstream calls per window across two workers', async () => {
    const before = upstream.calls.length;
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `limited ${i}` })).body.id);
    const done = await waitAllDone(ids);
    expect(done.every((g) => g.status === 'completed')).toBe(true);
    const at = upstream.calls.slice(before).map((c) => c.at).sort((a, b) => a - b);
    expect(at).toHaveLength(8);
    // fixed windows of 2: any 5 consecutive calls span at least three windows
    for (let i = 0; i + 4 < at.length; i++) expect(at[i + 4]! - at[i]!).toBeGreaterThanOrEqual(WINDOW_MS - 50);
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(3 * WINDOW_MS - 50);
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
});
