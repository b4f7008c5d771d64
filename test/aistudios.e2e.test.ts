import { FakeUpstream } from './support/fake-upstream';
import { checkResultImages } from './support/images';
import { keysUnder } from './support/redis';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const UPSTREAM_KEY = 'sk-upstream-secret-7f3a9c';

describe('aistudios provider against a fake upstream on a real socket', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'aistudios', env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_API_KEY: UPSTREAM_KEY } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('sends the seed’s body and Authorization header, downloads the one-shot URL at once, and serves its own copy', async () => {
    upstream.enqueue({ kind: 'ok', file: { kind: 'image', width: 1344, height: 768, format: 'jpeg' } });
    const res = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'a quiet harbour', style: 'ILLUSTRATION', size: 'LANDSCAPE' });
    expect(res.status).toBe(200);

    expect(upstream.calls).toHaveLength(1);
    const call = upstream.calls[0]!;
    expect(call.authorization).toBe(UPSTREAM_KEY);
    expect(call.contentType).toMatch(/^application\/json/);
    expect(call.body).toEqual({ topic: 'a quiet harbour', style: 'ILLUSTRATION', size: 'LANDSCAPE' });

    // the upstream served its file exactly once; it is gone now, yet our URL still serves the image
    expect(upstream.fetches.map((f) => f.status)).toEqual([200]);
    const again = await fetch(`${upstream.baseUrl}${upstream.fetches[0]!.path}`);
    expect(again.status).toBe(404);
    const generation = (await getJson(`${stack.baseUrl}/v1/generations/${res.body.id}`)).body;
    expect(res.body.downloadUrl).toBe(generation.result.image.url);
    expect(new URL(res.body.downloadUrl).origin).toBe(stack.baseUrl);
    // the original is kept as received (JPEG), thumbnails are WebP
    expect(await checkResultImages(generation, 'LANDSCAPE', { originalFormat: 'jpeg' })).toEqual([]);
  });

  it('never writes the upstream credential into Redis (records, jobs, logs)', async () => {
    await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'secret check' }, { Prefer: 'wait=20' });
    const keys = await keysUnder(stack.redis, stack.prefix);
    expect(keys.length).toBeGreaterThan(3);
    for (const key of keys) {
      const dump = await stack.redis.dump(key);
      expect([key, dump?.includes(UPSTREAM_KEY)]).toEqual([key, false]);
    }
  });
});
