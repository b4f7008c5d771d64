import { FakeUpstream } from './support/fake-upstream';
import { checkResultImages } from './support/images';
import { postJson, startStack, type Stack } from './support/stack';

describe('openai provider (Images API) against a fake on a real socket', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({
      name: 'openai',
      env: { GENERATOR: 'openai', GENERATOR_URL: `${upstream.baseUrl}/v1/images/generations`, GENERATOR_API_KEY: 'sk-test-openai', GENERATOR_MODEL: 'gpt-image-1', GENERATOR_MAX_ATTEMPTS: '2' },
    });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it.each([
    ['LANDSCAPE', '1536x1024', 1536, 1024],
    ['PORTRAIT', '1024x1536', 1024, 1536],
    ['SQUARE', '1024x1024', 1024, 1024],
  ] as const)('b64_json answers: %s maps to %s, style folded into the prompt', async (size, apiSize, w, h) => {
    upstream.openAiAnswer = 'b64_json';
    const before = upstream.calls.length;
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'a koi pond', style: 'ILLUSTRATION', size }, { Prefer: 'wait=30' });
    expect(res.body).toMatchObject({ status: 'completed', result: { image: { width: w, height: h, format: 'png' } } });
    const call = upstream.calls[before]!;
    expect(call.authorization).toBe('Bearer sk-test-openai');
    expect(call.body).toMatchObject({ model: 'gpt-image-1', n: 1, size: apiSize });
    expect((call.body as { prompt: string }).prompt).toMatch(/illustration/i);
    expect((call.body as { prompt: string }).prompt).toContain('a koi pond');
    expect(await checkResultImages(res.body, size, { expectDimensions: false })).toEqual([]);
  });

  it('url answers are downloaded at once', async () => {
    upstream.openAiAnswer = 'url';
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'url form', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(res.body.status).toBe('completed');
    expect(upstream.fetches.at(-1)?.status).toBe(200);
  });

  it('errors use the same classification: a content-policy 400 fails at once', async () => {
    upstream.enqueue({ kind: 'status', status: 400, body: '{"error":{"code":"content_policy_violation","message":"rejected by the safety system"}}' });
    const before = upstream.calls.length;
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'refused' }, { Prefer: 'wait=30' });
    expect(res.body).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'content_policy_violation', retryable: false } });
    expect(upstream.calls.length - before).toBe(1);
  });

  it('429 is retried like any upstream', async () => {
    upstream.openAiAnswer = 'b64_json';
    upstream.enqueue({ kind: 'status', status: 429, retryAfter: '1' });
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'busy' }, { Prefer: 'wait=30' });
    expect(res.body).toMatchObject({ status: 'completed', attempts: 2 });
  });
});
