import { SIZES, type Size } from '@imagegen/shared';
import { checkResultImages, fetchImage } from './support/images';
import { eventually } from './support/net';
import { ADMIN_AUTH, getJson, postJson, startStack, type Stack } from './support/stack';

describe('generation end to end with the builtin provider', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'e2e' });
  });
  afterAll(() => stack.close());

  it('seed endpoint waits and answers a downloadUrl that serves the original to a plain GET', async () => {
    const res = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'a lighthouse at dawn', style: 'PHOTOGRAPHIC', size: 'PORTRAIT' }, { Authorization: 'any-key' });
    expect(res.status).toBe(200);
    expect(res.body.downloadUrl).toMatch(new RegExp(`^${stack.baseUrl}/files/[A-Za-z0-9_-]{22}/original-[0-9a-f]{8}\\.png$`));
    const img = await fetchImage(res.body.downloadUrl);
    expect(img).toMatchObject({ status: 200, contentType: 'image/png', format: 'png', width: 768, height: 1344 });
    const generation = (await getJson(`${stack.baseUrl}/v1/generations/${res.body.id}`)).body;
    expect(generation.status).toBe('completed');
    expect(await checkResultImages(generation, 'PORTRAIT', { originalFormat: 'png' })).toEqual([]);
  });

  it.each(SIZES)('POST /v1/generations (%s) answers 202, then completes with an original and every thumbnail', async (size: Size) => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `harbour at night ${size}`, style: 'VECTOR_IMAGE', size, metadata: { orderId: 42, tags: ['a'] } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'queued', stage: 'queued', progress: 0, request: { topic: `harbour at night ${size}`, style: 'VECTOR_IMAGE', size }, metadata: { orderId: 42, tags: ['a'] } });
    expect(created.headers.get('location')).toBe(`${stack.baseUrl}/v1/generations/${created.body.id}`);
    const done = await eventually(async () => {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      return g.status === 'completed' ? g : undefined;
    });
    expect(done).toMatchObject({ progress: 100, stage: 'done', attempts: 1, metadata: { orderId: 42, tags: ['a'] } });
    expect(Date.parse(done.startedAt)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));
    expect(Date.parse(done.completedAt)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));
    expect(done.result.thumbnails.map((t: { size: number }) => t.size)).toEqual([1024, 512, 256]);
    expect(done.result.thumbnails.every((t: { format: string }) => t.format === 'webp')).toBe(true);
    expect(typeof done.result.placeholder).toBe('string');
    expect(Buffer.from(done.result.placeholder, 'base64').length).toBeGreaterThan(5);
    expect(await checkResultImages(done, size, { originalFormat: 'png' })).toEqual([]);
  });

  it('Prefer: wait=N answers 200 with the finished generation', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'a red fox', style: '3D', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=30');
    expect(res.body.status).toBe('completed');
    expect(await checkResultImages(res.body, 'SQUARE')).toEqual([]);
  });

  it('metadata null, as a GET answers for none, is taken as none, for generations, batches and their items', async () => {
    const gen = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'no metadata', metadata: null });
    expect([gen.status, gen.body.metadata]).toEqual([202, null]);
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'item', metadata: null }], metadata: null });
    expect([batch.status, batch.body.metadata]).toEqual([202, null]);
    await fetch(`${stack.baseUrl}/v1/batches/${batch.body.id}`, { method: 'DELETE' });
    await fetch(`${stack.baseUrl}/v1/generations/${gen.body.id}`, { method: 'DELETE' });
  });

  it('file URLs are unguessable and never list anything', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'listing' }, { Prefer: 'wait=30' });
    const url = new URL(res.body.result.image.url);
    const token = url.pathname.split('/')[2] as string;
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(token).not.toContain(res.body.id);
    for (const probe of [`/files/${token}`, `/files/${token}/`, '/files/', `/files/${token}/../original.png`, `/files/${token}x/original.png`]) {
      const r = await fetch(`${stack.baseUrl}${probe}`);
      expect([r.status, probe]).toEqual([404, probe]);
    }
  });

  it('lists the caller’s generations newest first with a cursor', async () => {
    const page1 = await getJson(`${stack.baseUrl}/v1/generations?limit=2`);
    expect(page1.status).toBe(200);
    expect(page1.body.data).toHaveLength(2);
    const page2 = await getJson(`${stack.baseUrl}/v1/generations?limit=2&cursor=${page1.body.nextCursor}`);
    const ids = [...page1.body.data, ...page2.body.data].map((g: { id: string }) => g.id);
    expect(ids).toEqual([...ids].sort().reverse());
    expect(new Set(ids).size).toBe(ids.length);
    const completed = await getJson(`${stack.baseUrl}/v1/generations?status=completed&limit=100`);
    expect(completed.body.data.length).toBeGreaterThanOrEqual(5);
    expect(completed.body.data.every((g: { status: string }) => g.status === 'completed')).toBe(true);
    const tooMany = await getJson(`${stack.baseUrl}/v1/generations?limit=1000&status=done&cursor=page2`);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors).toEqual([
      { path: 'status', message: 'must be one of queued, active, completed, failed, cancelled' },
      { path: 'limit', message: 'must be a whole number from 1 to 100' },
      { path: 'cursor', message: 'must be a nextCursor from an earlier page' },
    ]);
    // what Number() would read as 16 and 10 is no page size
    for (const limit of ['0x10', '1e1']) {
      const odd = await getJson(`${stack.baseUrl}/v1/generations?limit=${limit}`);
      expect([odd.status, odd.body.errors]).toEqual([400, [{ path: 'limit', message: 'must be a whole number from 1 to 100' }]]);
    }
    // an unset parameter written empty, as URL builders do, is no parameter
    expect((await getJson(`${stack.baseUrl}/v1/generations?limit=2&status=&cursor=`)).body.data).toHaveLength(2);
    // listings that take no parameters refuse any, as those that take some refuse unknown ones (before: ignored)
    const someId = page1.body.data[0].id as string;
    for (const url of [`/v1/generations?limt=5`, `/v1/generations/${someId}/deliveries?limit=5`, `/admin/tenants/acme/keys?limit=5`]) {
      const refused = await getJson(`${stack.baseUrl}${url}`, url.startsWith('/admin') ? ADMIN_AUTH : {});
      expect([url, refused.status, refused.body.errors?.[0]?.path]).toEqual([url, 400, url.includes('limt') ? 'limt' : 'limit']);
    }
    expect((await getJson(`${stack.baseUrl}/v1/generations/${someId}/deliveries?`)).status).toBe(200);
    const bad = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'x', priority: 'urgent', webhook: { url: 'https://hooks.example', events: [] } });
    expect(bad.body.errors).toEqual([
      { path: 'webhook.events', message: 'must have at least 1 item' },
      { path: 'priority', message: 'must be one of high, normal, low' },
    ]);
  });

  it('healthz and readyz answer; docs and the OpenAPI document are served', async () => {
    expect((await getJson(`${stack.baseUrl}/healthz`)).status).toBe(200);
    expect((await getJson(`${stack.baseUrl}/readyz`)).body).toEqual({ status: 'ready', redis: 'up' });
    const doc = await getJson(`${stack.baseUrl}/openapi.json`);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/generations', '/api/odin/v3/tools/image-generator']));
    const page = await fetch(`${stack.baseUrl}/docs`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('/v1/generations/{id}');
    // with a trailing slash the page's relative URLs would miss: it moves to /docs
    const slash = await fetch(`${stack.baseUrl}/docs/`, { redirect: 'manual' });
    expect(slash.status).toBe(301);
    expect(new URL(slash.headers.get('location') ?? '', `${stack.baseUrl}/docs/`).href).toBe(`${stack.baseUrl}/docs`);
  });
});

describe('the seed endpoint past its wait', () => {
  let stack: Stack;
  beforeAll(async () => {
    // no worker: the generation is still queued when the wait ends
    stack = await startStack({ name: 'seed-wait', worker: false, env: { SYNC_WAIT_TIMEOUT_MS: '200' } });
  });
  afterAll(() => stack.close());

  it('answers 202 with where to follow the generation and when to ask again', async () => {
    const res = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'goes on' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'queued', statusUrl: `${stack.baseUrl}/v1/generations/${res.body.id}` });
    expect(res.headers.get('location')).toBe(res.body.statusUrl);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await getJson(res.headers.get('location')!)).body).toMatchObject({ id: res.body.id, status: 'queued' });
  });
});
