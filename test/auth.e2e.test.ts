import http from 'node:http';
import { ADMIN, getJson, postJson, startStack, type Stack } from './support/stack';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('tenants and operators', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'auth', env: { API_KEYS: 'acme:key-acme-1,globex:key-globex-1' } });
  });
  afterAll(() => stack.close());

  it('requires a known key, as Bearer or bare like the seed', async () => {
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'x' })).status).toBe(401);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'x' }, { Authorization: 'Bearer wrong' })).status).toBe(401);
    const noKey = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'x' });
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('content-type')).toMatch(/problem\+json/);
    const seed = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'bare key' }, { Authorization: 'key-acme-1' });
    expect(seed.status).toBe(200);
    const bearer = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'bearer key' }, { Authorization: 'Bearer key-globex-1' });
    expect(bearer.status).toBe(202);
  });

  it('two Authorization headers are refused with 400, whichever keys they carry, for tenants and operators alike', async () => {
    // fetch joins repeated headers into one; node:http sends each on its own line
    const twice = (path: string, values: string[]) =>
      new Promise<{ status: number; type: string }>((resolve, reject) => {
        const url = new URL(path, stack.baseUrl);
        http
          .get({ host: url.hostname, port: url.port, path: url.pathname, headers: { Authorization: values } }, (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '' });
          })
          .on('error', reject);
      });
    for (const values of [['Bearer key-acme-1', 'Bearer key-globex-1'], ['Bearer key-acme-1', 'Bearer key-acme-1'], ['Bearer wrong', 'Bearer key-acme-1']]) {
      expect(await twice('/v1/generations', values)).toEqual({ status: 400, type: expect.stringMatching(/^application\/problem\+json/) });
    }
    expect(await twice('/metrics', [basic(ADMIN.user, ADMIN.password), basic(ADMIN.user, ADMIN.password)])).toEqual({ status: 400, type: expect.stringMatching(/^application\/problem\+json/) });
    expect((await twice('/v1/generations', ['Bearer key-acme-1'])).status).toBe(200);
  });

  it('a tenant sees only its own generations: another tenant’s id reads as unknown', async () => {
    const mine = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'acme only' }, { Authorization: 'Bearer key-acme-1' });
    const asOwner = await getJson(`${stack.baseUrl}/v1/generations/${mine.body.id}`, { Authorization: 'Bearer key-acme-1' });
    expect(asOwner.status).toBe(200);
    const asOther = await getJson(`${stack.baseUrl}/v1/generations/${mine.body.id}`, { Authorization: 'Bearer key-globex-1' });
    const unknown = await getJson(`${stack.baseUrl}/v1/generations/gen_0000000000000000000000`, { Authorization: 'Bearer key-globex-1' });
    expect(asOther.status).toBe(404);
    expect({ ...asOther.body, detail: '' }).toEqual({ ...unknown.body, detail: '' });
    const cancel = await fetch(`${stack.baseUrl}/v1/generations/${mine.body.id}`, { method: 'DELETE', headers: { Authorization: 'Bearer key-globex-1' } });
    expect(cancel.status).toBe(404);
    const list = await getJson(`${stack.baseUrl}/v1/generations?limit=100`, { Authorization: 'Bearer key-globex-1' });
    expect(list.body.data.map((g: { id: string }) => g.id)).not.toContain(mine.body.id);
  });

  it('a batch’s deliveries are its tenant’s only: another tenant’s read or redeliver answers as for an unknown batch', async () => {
    const acme = { Authorization: 'Bearer key-acme-1' };
    const globex = { Authorization: 'Bearer key-globex-1' };
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'acme batch' }] }, acme);
    expect(batch.status).toBe(202);
    const own = await getJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries`, acme);
    expect([own.status, own.body]).toEqual([200, { object: 'list', data: [] }]);
    const unknown = await getJson(`${stack.baseUrl}/v1/batches/batch_0000000000000000000000/deliveries`, globex);
    const asOther = await getJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries`, globex);
    expect(asOther.status).toBe(404);
    expect({ ...asOther.body, detail: '' }).toEqual({ ...unknown.body, detail: '' });
    const redeliver = await postJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries/dlv_x/redeliver`, undefined, globex);
    expect([redeliver.status, redeliver.body.detail]).toEqual([404, `Batch ${batch.body.id} was not found`]);
    const all = await postJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries/redeliver`, {}, globex);
    expect([all.status, all.body.detail]).toEqual([404, `Batch ${batch.body.id} was not found`]);
    const mine = await postJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries/redeliver`, {}, acme);
    expect([mine.status, mine.body.batchId]).toEqual([202, batch.body.id]);
    // the recovery is the tenant's: another tenant's read of it is a 404
    expect((await getJson(`${stack.baseUrl}/v1/webhooks/recoveries/${mine.body.id}`, globex)).status).toBe(404);
  });

  it('/admin/queues: 401 without or with wrong credentials, the dashboard with them', async () => {
    const none = await fetch(`${stack.baseUrl}/admin/queues`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect((await fetch(`${stack.baseUrl}/admin/queues`, { headers: { Authorization: basic(ADMIN.user, 'nope') } })).status).toBe(401);
    // a tenant key is not an operator credential
    expect((await fetch(`${stack.baseUrl}/admin/queues`, { headers: { Authorization: 'Bearer key-acme-1' } })).status).toBe(401);
    const ok = await fetch(`${stack.baseUrl}/admin/queues`, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/<html/i);
    const api = await getJson(`${stack.baseUrl}/admin/queues/api/queues`, { Authorization: basic(ADMIN.user, ADMIN.password) });
    expect(api.status).toBe(200);
    expect(api.body.queues.map((q: { name: string }) => q.name)).toContain('generate');
    expect((await fetch(`${stack.baseUrl}/admin/queues/api/queues`)).status).toBe(401);
  });

  it('/admin/queues: the webhooks queue is read-only (its jobs carry pending deliveries on), the others are not', async () => {
    const operator = { Authorization: basic(ADMIN.user, ADMIN.password) };
    const put = (path: string) => fetch(`${stack.baseUrl}/admin/queues/api/queues/${path}`, { method: 'PUT', headers: operator });
    const queues = (await getJson(`${stack.baseUrl}/admin/queues/api/queues`, operator)).body.queues as { name: string; readOnlyMode: boolean }[];
    expect(Object.fromEntries(queues.map((q) => [q.name, q.readOnlyMode]))).toEqual({ generate: false, maintenance: false, webhooks: true });
    // before: 204, and a delayed retry cleaned so left its delivery pending for good
    for (const action of ['clean/delayed', 'clean/completed', 'empty', 'pause']) expect([action, (await put(`webhooks/${action}`)).status]).toEqual([action, 405]);
    expect((await put('generate/clean/completed')).status).toBe(200);
  });
});
