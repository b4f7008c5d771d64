import { keysUnder } from './support/redis';
import { postJson, startStack, type Stack } from './support/stack';

const SEED = '/api/odin/v3/tools/image-generator';
const V1 = '/v1/generations';

type Case = { name: string; body: string; contentType?: string; status: number; paths?: string[] };

const cases: Case[] = [
  { name: 'missing topic', body: JSON.stringify({ style: 'PHOTOGRAPHIC' }), status: 400, paths: ['topic'] },
  { name: 'empty topic', body: JSON.stringify({ topic: '   ' }), status: 400, paths: ['topic'] },
  { name: 'wrong style', body: JSON.stringify({ topic: 'x', style: 'WATERCOLOUR' }), status: 400, paths: ['style'] },
  { name: 'wrong size', body: JSON.stringify({ topic: 'x', size: 'HUGE' }), status: 400, paths: ['size'] },
  { name: '5,000-character topic', body: JSON.stringify({ topic: 'x'.repeat(5000) }), status: 400, paths: ['topic'] },
  { name: 'topic of the wrong type', body: JSON.stringify({ topic: 42 }), status: 400, paths: ['topic'] },
  { name: 'unknown field', body: JSON.stringify({ topic: 'x', colour: 'red' }), status: 400, paths: ['colour'] },
  { name: 'several bad fields at once', body: JSON.stringify({ style: 'NOPE', size: 'NOPE' }), status: 400, paths: ['topic', 'style', 'size'] },
  { name: 'not JSON', body: '{"topic": "x",', status: 400, paths: ['(body)'] },
  { name: 'an array instead of an object', body: JSON.stringify([{ topic: 'x' }]), status: 400, paths: ['(body)'] },
  { name: 'a JSON string', body: JSON.stringify('topic'), status: 400, paths: ['(body)'] },
  { name: 'null', body: 'null', status: 400, paths: ['(body)'] },
  // JSON.parse makes it Infinity, which would be kept and returned as null
  { name: 'metadata holding a number past the largest double', body: '{"topic":"x","metadata":{"n":1e400}}', status: 400, paths: ['metadata'] },
  { name: 'form-encoded body', body: 'topic=x', contentType: 'application/x-www-form-urlencoded', status: 415 },
  { name: 'plain text body', body: 'a lighthouse', contentType: 'text/plain', status: 415 },
  { name: 'a body over the size limit', body: JSON.stringify({ topic: 'x', pad: 'y'.repeat(2 * 1024 * 1024) }), status: 413 },
];

describe('bad input gets problem+json and nothing is enqueued', () => {
  let stack: Stack;
  let before: string[];
  beforeAll(async () => {
    stack = await startStack({ name: 'validation', worker: false });
    before = await keysUnder(stack.redis, stack.prefix);
  });
  afterAll(() => stack.close());

  for (const endpoint of [SEED, V1]) {
    it.each(cases)(`${endpoint}: $name → $status`, async ({ body, contentType, status, paths }) => {
      const res = await fetch(`${stack.baseUrl}${endpoint}`, { method: 'POST', headers: { 'Content-Type': contentType ?? 'application/json' }, body });
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { type: string; title: string; status: number; detail: string; errors?: { path: string; message: string }[] };
      expect(problem).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
      expect(JSON.stringify(problem)).not.toMatch(/at .+\.(ts|js):\d+/);
      if (paths) expect(problem.errors?.map((e) => e.path).sort()).toEqual([...paths].sort());
      for (const e of problem.errors ?? []) expect(e.message.length).toBeGreaterThan(3);
    });
  }

  it('nothing was added to Redis by any of them', async () => {
    expect(await keysUnder(stack.redis, stack.prefix)).toEqual(before);
  });

  it('metadata over 4 KB and a bad webhook URL are named', async () => {
    const res = await postJson(`${stack.baseUrl}${V1}`, { topic: 'x', metadata: { blob: 'z'.repeat(5000) }, webhook: { url: 'ftp://example.com' }, priority: 'urgent' });
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['metadata', 'priority', 'webhook.url']);
    expect(await keysUnder(stack.redis, stack.prefix)).toEqual(before);
  });

  it('unknown routes and ids answer problem+json 404', async () => {
    for (const path of ['/nope', '/v1/generations/gen_doesnotexist']) {
      const res = await fetch(`${stack.baseUrl}${path}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
  });

  it('a known path asked with another method answers 405 problem+json with Allow', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/v1/generations', 'POST, GET, HEAD, OPTIONS'],
      ['PATCH', '/v1/generations/gen_x', 'GET, HEAD, DELETE, OPTIONS'],
      ['POST', '/v1/batches/batch_x/results', 'GET, HEAD, OPTIONS'],
      ['DELETE', '/healthz', 'GET, HEAD, OPTIONS'],
    ] as const) {
      const res = await fetch(`${stack.baseUrl}${path}`, { method });
      expect([method, path, res.status, res.headers.get('allow')]).toEqual([method, path, 405, allow]);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { status: number }).status).toBe(405);
      // OPTIONS says the same, without credentials (before: Express's 200 "GET,HEAD", or 401 under /v1)
      const options = await fetch(`${stack.baseUrl}${path}`, { method: 'OPTIONS' });
      expect([path, options.status, options.headers.get('allow'), await options.text()]).toEqual([path, 204, allow, '']);
    }
    // a path the document does not name is still unknown
    expect((await fetch(`${stack.baseUrl}/nope`, { method: 'OPTIONS' })).status).toBe(404);
  });
});
