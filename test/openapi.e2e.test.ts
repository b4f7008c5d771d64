import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { ADMIN_AUTH, getJson, postJson, startStack, type Stack } from './support/stack';
import { eventually } from './support/net';

/**
 * /openapi.json is a valid OpenAPI 3.1 document generated from the zod schemas, lists every
 * contract endpoint, and the main routes answer what their schemas describe.
 */

type Schema = Record<string, any>;
type DocResponse = { description: string; headers?: Record<string, { required?: boolean; schema: Schema }>; content?: Record<string, { schema?: Schema }> };
type Parameter = { name: string; in: string; required?: boolean; description?: string; schema: Schema };
type Operation = { description?: string; security?: unknown[]; parameters?: Parameter[]; responses: Record<string, DocResponse> };
type Doc = { openapi: string; info: { description: string }; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };

const CONTRACT_ENDPOINTS = [
  ['post', '/api/odin/v3/tools/image-generator'],
  ['post', '/v1/generations'],
  ['get', '/v1/generations'],
  ['get', '/v1/generations/{id}'],
  ['delete', '/v1/generations/{id}'],
  ['get', '/v1/generations/{id}/events'],
  ['get', '/v1/generations/{id}/deliveries'],
  ['post', '/v1/generations/{id}/deliveries/{deliveryId}/redeliver'],
  ['get', '/v1/webhooks/secret'],
  ['post', '/v1/batches'],
  ['get', '/v1/batches'],
  ['get', '/v1/batches/{id}'],
  ['delete', '/v1/batches/{id}'],
  ['get', '/v1/batches/{id}/results'],
  ['get', '/v1/batches/{id}/events'],
  ['get', '/v1/batches/{id}/archive'],
  ['get', '/v1/usage'],
  ['post', '/admin/tenants/{tenant}/keys'],
  ['get', '/admin/tenants/{tenant}/keys'],
  ['delete', '/admin/tenants/{tenant}/keys/{id}'],
  ['post', '/v1/webhooks/secret/rotate'],
  ['get', '/admin/queues'],
  ['get', '/metrics'],
  ['get', '/healthz'],
  ['get', '/readyz'],
  ['get', '/docs'],
  ['get', '/openapi.json'],
  ['get', '/'],
] as const;

describe('OpenAPI document', () => {
  let stack: Stack;
  let doc: Doc;
  let ajv: Ajv2020;

  beforeAll(async () => {
    stack = await startStack({ name: 'openapi' });
    doc = (await (await fetch(`${stack.baseUrl}/openapi.json`)).json()) as Doc;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
      ajv.addSchema(rest, `#/components/schemas/${name}`);
    }
  });
  afterAll(async () => stack?.close());

  /** Fails unless `body` matches the schema the document gives for this route and status. */
  function expectDescribed(method: string, path: string, status: number, contentType: string, body: unknown): void {
    const response = doc.paths[path]?.[method]?.responses[String(status)];
    if (!response) throw new Error(`${method.toUpperCase()} ${path} does not document status ${status}`);
    const ref = response.content?.[contentType]?.schema?.$ref;
    if (!ref) throw new Error(`${method.toUpperCase()} ${path} ${status} has no ${contentType} schema`);
    const validate = ajv.getSchema(ref);
    if (!validate) throw new Error(`no schema ${ref}`);
    if (!validate(body)) throw new Error(`${method.toUpperCase()} ${path} ${status} answered what ${ref} does not describe: ${ajv.errorsText(validate.errors)}`);
  }

  it('validates as OpenAPI 3.1', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const run = (d: unknown) => spawnSync(process.execPath, [path.join(__dirname, 'support', 'validate-openapi.mjs')], { input: JSON.stringify(d), encoding: 'utf8', timeout: 30_000 });
    const result = run(doc);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('valid OpenAPI 3.1.0');
    expect(result.status).toBe(0);
    // the validator can fail: a response without its description is not OpenAPI
    const broken = structuredClone(doc);
    delete (broken.paths['/healthz']!.get!.responses['200'] as { description?: string }).description;
    expect(run(broken).status).toBe(1);
  });

  it('describes fields as a reader needs them: no dialect per schema, no date-time regex, no safe-integer bounds', () => {
    const text = JSON.stringify(doc.components.schemas);
    expect(text).not.toContain('$schema');
    expect(text).not.toContain(String(Number.MAX_SAFE_INTEGER));
    const dateTimes: Record<string, unknown>[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (o.format === 'date-time') dateTimes.push(o);
      Object.values(o).forEach(walk);
    };
    walk(doc.components.schemas);
    expect(dateTimes.length).toBeGreaterThan(5);
    expect(dateTimes.filter((d) => 'pattern' in d)).toEqual([]);
  });

  it('lists every contract endpoint', () => {
    const missing = CONTRACT_ENDPOINTS.filter(([method, path]) => !doc.paths[path]?.[method]);
    expect(missing).toEqual([]);
  });

  it('declares every path parameter on every operation, and the query parameters of the listings', () => {
    const undeclared: string[] = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      const names = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(operations as Record<string, { parameters?: { name: string; in: string; required?: boolean }[] }>)) {
        for (const name of names) if (!op.parameters?.some((p) => p.in === 'path' && p.name === name && p.required)) undeclared.push(`${method} ${template} ${name}`);
      }
    }
    // before: 19 operations, /v1/generations/{id} among them
    expect(undeclared).toEqual([]);
    const query = (path: string) => ((doc.paths[path] as any).get.parameters ?? []).filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name);
    expect([query('/v1/generations'), query('/v1/batches'), query('/v1/usage')]).toEqual([['status', 'limit', 'cursor'], ['limit', 'cursor'], ['days']]);
  });

  it('the main routes answer what their schemas describe', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'schema-checked lighthouse', metadata: { order: 7 } }, { prefer: 'wait=30' });
    expectDescribed('post', '/v1/generations', created.status, 'application/json', created.body);
    const id = created.body.id as string;
    const got = await (await fetch(`${stack.baseUrl}/v1/generations/${id}`)).json();
    expectDescribed('get', '/v1/generations/{id}', 200, 'application/json', got);
    const list = await (await fetch(`${stack.baseUrl}/v1/generations?limit=5`)).json();
    expectDescribed('get', '/v1/generations', 200, 'application/json', list);
    const deliveries = await (await fetch(`${stack.baseUrl}/v1/generations/${id}/deliveries`)).json();
    expectDescribed('get', '/v1/generations/{id}/deliveries', 200, 'application/json', deliveries);
    const secret = await (await fetch(`${stack.baseUrl}/v1/webhooks/secret`)).json();
    expectDescribed('get', '/v1/webhooks/secret', 200, 'application/json', secret);
    const seed = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'seed schema' });
    expectDescribed('post', '/api/odin/v3/tools/image-generator', seed.status, 'application/json', seed.body);
    const cancelDone = await fetch(`${stack.baseUrl}/v1/generations/${id}`, { method: 'DELETE' });
    expectDescribed('delete', '/v1/generations/{id}', cancelDone.status, 'application/problem+json', await cancelDone.json());
    const missing = await fetch(`${stack.baseUrl}/v1/generations/gen_unknown`);
    expectDescribed('get', '/v1/generations/{id}', 404, 'application/problem+json', await missing.json());
    const bad = await postJson(`${stack.baseUrl}/v1/generations`, { topic: '' });
    expectDescribed('post', '/v1/generations', 400, 'application/problem+json', bad.body);
    const health = (await getJson(`${stack.baseUrl}/healthz`)).body;
    expectDescribed('get', '/healthz', 200, 'application/json', health);
    expectDescribed('get', '/readyz', 200, 'application/json', (await getJson(`${stack.baseUrl}/readyz`)).body);
  });

  it('batches, usage and key management answer what their schemas describe', async () => {
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'schema-checked batch item' }], metadata: { run: 1 } });
    expectDescribed('post', '/v1/batches', 202, 'application/json', batch.body);
    expectDescribed('get', '/v1/batches/{id}', 200, 'application/json', (await getJson(`${stack.baseUrl}/v1/batches/${batch.body.id}`)).body);
    expectDescribed('get', '/v1/batches', 200, 'application/json', (await getJson(`${stack.baseUrl}/v1/batches?limit=2`)).body);
    const badBatch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: '' }] });
    expectDescribed('post', '/v1/batches', 400, 'application/problem+json', badBatch.body);
    expectDescribed('get', '/v1/usage', 200, 'application/json', (await getJson(`${stack.baseUrl}/v1/usage`)).body);
    // both kinds of recovery, as started and as read back once finished
    const redelivery = await postJson(`${stack.baseUrl}/v1/batches/${batch.body.id}/deliveries/redeliver`, {});
    expectDescribed('post', '/v1/batches/{id}/deliveries/redeliver', 202, 'application/json', redelivery.body);
    const finished = (id: string) =>
      eventually(async () => {
        const r = (await getJson(`${stack.baseUrl}/v1/webhooks/recoveries/${id}`)).body;
        return r.status === 'completed' ? r : undefined;
      });
    expectDescribed('get', '/v1/webhooks/recoveries/{id}', 200, 'application/json', await finished(redelivery.body.id));
    const recovery = await postJson(`${stack.baseUrl}/v1/webhooks/recover`, { since: new Date(Date.now() - 60_000).toISOString() });
    expectDescribed('post', '/v1/webhooks/recover', 202, 'application/json', recovery.body);
    expectDescribed('get', '/v1/webhooks/recoveries/{id}', 200, 'application/json', await finished(recovery.body.id));
    expect(() => expectDescribed('get', '/v1/webhooks/recoveries/{id}', 200, 'application/json', { ...recovery.body, since: undefined, until: undefined })).toThrow(/does not describe/);
    expect(() => expectDescribed('get', '/v1/webhooks/recoveries/{id}', 200, 'application/json', { ...recovery.body, states: ['pending'] })).toThrow(/does not describe/);
    const admin = ADMIN_AUTH;
    const key = await postJson(`${stack.baseUrl}/admin/tenants/schema-tenant/keys`, {}, admin);
    expectDescribed('post', '/admin/tenants/{tenant}/keys', 201, 'application/json', key.body);
    expectDescribed('get', '/admin/tenants/{tenant}/keys', 200, 'application/json', (await getJson(`${stack.baseUrl}/admin/tenants/schema-tenant/keys`, admin)).body);
    expect((await fetch(`${stack.baseUrl}/admin/tenants/schema-tenant/keys/${key.body.id}`, { method: 'DELETE', headers: admin })).status).toBe(204);
    // keys stay required after the last is revoked; the tests that follow use open dev mode, as an operator gets it back
    await stack.redis.del(stack.api.keys.apiKeysRequired());
  });

  it('catches an answer its schema does not describe', () => {
    expect(() => expectDescribed('get', '/v1/generations/{id}', 200, 'application/json', { id: 'gen_x', status: 'exploded' })).toThrow(/does not describe/);
    expect(() => expectDescribed('get', '/v1/generations', 200, 'application/json', { object: 'list', data: 'nope' })).toThrow(/does not describe/);
  });

  /** Fails unless each of `names` is in the answer and documented for its status, and the answer has every header documented as required. */
  function expectHeadersDescribed(method: string, path: string, res: { status: number; headers: Headers }, names: string[]): void {
    const response = doc.paths[path]?.[method]?.responses[String(res.status)];
    if (!response) throw new Error(`${method.toUpperCase()} ${path} does not document status ${res.status}`);
    const documented = Object.keys(response.headers ?? {}).map((h) => h.toLowerCase());
    const where = `${method.toUpperCase()} ${path} ${res.status}`;
    expect({ where, undocumented: names.filter((n) => !documented.includes(n.toLowerCase())) }).toEqual({ where, undocumented: [] });
    expect({ where, unsent: names.filter((n) => !res.headers.has(n)) }).toEqual({ where, unsent: [] });
    const required = Object.entries(response.headers ?? {}).filter(([, h]) => h.required).map(([n]) => n);
    expect({ where, missing: required.filter((n) => !res.headers.has(n)) }).toEqual({ where, missing: [] });
  }

  /**
   * A request as given: fetch would join repeated headers into one, and adds Cache-Control:
   * no-cache to a conditional request, which a server then answers in full.
   */
  const rawRequest = (method: string, path: string, headers: http.OutgoingHttpHeaders) =>
    new Promise<{ status: number; headers: Headers; type: string; text: string }>((resolve, reject) => {
      const url = new URL(path, stack.baseUrl);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => {
          const answered = new Headers(Object.entries(res.headers).map(([k, v]) => [k, String(v)] as [string, string]));
          resolve({ status: res.statusCode as number, headers: answered, type: String(res.headers['content-type']).split(';')[0] as string, text });
        });
      });
      req.on('error', reject).end();
    });

  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
  const authenticated = () => operations().filter(({ op }) => op.security?.length !== 0);

  it('every authenticated operation answers 400 (two Authorization headers), 401 with WWW-Authenticate and 503 with Retry-After', async () => {
    // every /v1, seed and /admin operation, /metrics too: all behind the credentials' check and Redis
    expect(authenticated().map(({ method, path }) => `${method} ${path}`)).toEqual(
      operations()
        .filter(({ path }) => /^\/(v1|api|admin)\/|^\/metrics$/.test(path))
        .map(({ method, path }) => `${method} ${path}`),
    );
    const lacking = authenticated()
      .filter(({ op }) => !op.responses['400'] || !op.responses['401']?.headers?.['WWW-Authenticate']?.required || !op.responses['503']?.headers?.['Retry-After']?.required)
      .map(({ method, path }) => `${method} ${path}`);
    // before: 503 on some operations only, 400 on those that validate input, neither header
    expect(lacking).toEqual([]);
    for (const [method, path, url] of [
      ['get', '/v1/generations/{id}', '/v1/generations/gen_unknown'],
      ['delete', '/admin/tenants/{tenant}/keys/{id}', '/admin/tenants/someone/keys/key_1'],
      ['get', '/metrics', '/metrics'],
    ] as const) {
      const answer = await rawRequest(method.toUpperCase(), url, { Authorization: ['Bearer one', 'Bearer two'] });
      expect(answer.status).toBe(400);
      expectDescribed(method, path, 400, answer.type, JSON.parse(answer.text));
    }
    const noCredentials = await fetch(`${stack.baseUrl}/metrics`);
    expect(noCredentials.status).toBe(401);
    expectHeadersDescribed('get', '/metrics', noCredentials, ['WWW-Authenticate']);
  });

  it("declares the tenant path parameter's form, and a tenant name out of it is answered 400", async () => {
    for (const [path, ops] of Object.entries(doc.paths).filter(([p]) => p.includes('{tenant}'))) {
      for (const op of Object.values(ops)) {
        const tenant = op.parameters?.find((p) => p.in === 'path' && p.name === 'tenant');
        expect({ path, pattern: tenant?.schema.pattern }).toEqual({ path, pattern: expect.any(String) });
        expect(op.responses['400']).toBeDefined();
      }
    }
    const pattern = new RegExp(doc.paths['/admin/tenants/{tenant}/keys/{id}']!.delete!.parameters!.find((p) => p.name === 'tenant')!.schema.pattern);
    expect(pattern.test('schema-tenant')).toBe(true);
    expect(pattern.test('no:colons')).toBe(false);
    const refused = await fetch(`${stack.baseUrl}/admin/tenants/no:colons/keys/key_1`, { method: 'DELETE', headers: ADMIN_AUTH });
    expect(refused.status).toBe(400);
    expectDescribed('delete', '/admin/tenants/{tenant}/keys/{id}', 400, 'application/problem+json', await refused.json());
  });

  it('documents the headers submissions answer with, and they are sent', async () => {
    const submissions = [
      ['post', '/v1/generations'],
      ['post', '/v1/batches'],
      ['post', '/api/odin/v3/tools/image-generator'],
    ] as const;
    const rateLimit = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'];
    for (const [method, path] of submissions) {
      const { responses } = doc.paths[path]![method]!;
      for (const status of Object.keys(responses).filter((s) => s.startsWith('2'))) expect({ path, status, headers: Object.keys(responses[status]!.headers ?? {}) }).toEqual({ path, status, headers: expect.arrayContaining(rateLimit) });
      expect({ path, headers: Object.keys(responses['429']!.headers ?? {}) }).toEqual({ path, headers: expect.arrayContaining(['Retry-After', ...rateLimit]) });
    }
    const key = `openapi-${randomBytes(4).toString('hex')}`;
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'headers checked' }, { 'Idempotency-Key': key });
    expect(created.status).toBe(202);
    expectHeadersDescribed('post', '/v1/generations', created, ['Location', ...rateLimit]);
    const replayed = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'headers checked' }, { 'Idempotency-Key': key });
    expectHeadersDescribed('post', '/v1/generations', replayed, ['Location', 'Idempotent-Replayed']);
    const waited = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'headers checked, waited for' }, { prefer: 'wait=30' });
    expectHeadersDescribed('post', '/v1/generations', waited, ['Location', 'Preference-Applied', ...rateLimit]);
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'headers checked batch' }] }, { 'Idempotency-Key': `${key}-batch` });
    expectHeadersDescribed('post', '/v1/batches', batch, ['Location', ...rateLimit]);
    const batchAgain = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'headers checked batch' }] }, { 'Idempotency-Key': `${key}-batch` });
    expectHeadersDescribed('post', '/v1/batches', batchAgain, ['Location', 'Idempotent-Replayed']);
    const seed = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'headers checked seed' });
    expectHeadersDescribed('post', '/api/odin/v3/tools/image-generator', seed, rateLimit);
    // past the wait the seed answers where to follow it and when to ask again
    expect(Object.keys(doc.paths['/api/odin/v3/tools/image-generator']!.post!.responses['202']!.headers ?? {})).toEqual(expect.arrayContaining(['Location', 'Retry-After']));
    // the Idempotency-Key the API takes
    const param = doc.paths['/v1/batches']!.post!.parameters!.find((p) => p.name === 'Idempotency-Key')!;
    expect([param.schema.minLength, param.schema.maxLength]).toEqual([1, 255]);
    expect(doc.paths['/v1/generations']!.post!.parameters!.find((p) => p.name === 'Idempotency-Key')!.schema).toEqual(param.schema);
    const tooLong = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'key too long' }, { 'Idempotency-Key': 'k'.repeat(256) });
    expect(tooLong.status).toBe(400);
    expect(ajv.validate(param.schema, 'k'.repeat(256))).toBe(false);
    expect(ajv.validate(param.schema, 'k'.repeat(255))).toBe(true);
  });

  it('result files: image content and the caching and range headers, as sent', async () => {
    const made = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'file headers' }, { prefer: 'wait=30' });
    expect(made.body.status).toBe('completed');
    const file = new URL(made.body.result.image.url as string);
    const path = '/files/{token}/{name}';
    const { responses } = doc.paths[path]!.get!;
    for (const status of ['200', '206']) expect(Object.keys(responses[status]!.content ?? {})).toEqual(expect.arrayContaining(['image/png', 'image/webp']));
    const whole = await fetch(`${stack.baseUrl}${file.pathname}`);
    expect(whole.status).toBe(200);
    expect(Object.keys(responses['200']!.content!)).toContain(whole.headers.get('content-type'));
    expectHeadersDescribed('get', path, whole, ['ETag', 'Last-Modified', 'Cache-Control', 'Accept-Ranges']);
    const part = await fetch(`${stack.baseUrl}${file.pathname}`, { headers: { Range: 'bytes=0-9' } });
    expect(part.status).toBe(206);
    expectHeadersDescribed('get', path, part, ['ETag', 'Last-Modified', 'Cache-Control', 'Accept-Ranges', 'Content-Range']);
    const same = await rawRequest('GET', file.pathname, { 'If-None-Match': whole.headers.get('etag') as string });
    expect(same.status).toBe(304);
    expectHeadersDescribed('get', path, same, ['ETag', 'Cache-Control']);
    const outside = await fetch(`${stack.baseUrl}${file.pathname}`, { headers: { Range: 'bytes=999999999-' } });
    expect(outside.status).toBe(416);
    expectHeadersDescribed('get', path, outside, ['Content-Range']);
    const wrongMethod = await fetch(`${stack.baseUrl}${file.pathname}`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expectHeadersDescribed('get', path, wrongMethod, ['Allow']);
  });

  it('request schemas refuse what the API refuses', async () => {
    const validate = (name: string, body: unknown) => ajv.validate(`#/components/schemas/${name}`, body) as boolean;
    const topic = doc.components.schemas.CreateGeneration!.properties.topic;
    expect([topic.minLength, topic.maxLength]).toEqual([1, 4000]);
    const refused: [string, string, unknown][] = [
      ['CreateGeneration', '/v1/generations', { topic: '' }],
      ['CreateGeneration', '/v1/generations', { topic: ' \n\t ' }],
      ['CreateGeneration', '/v1/generations', { topic: 'a'.repeat(4001) }],
      ['CreateGeneration', '/v1/generations', { topic: '😀'.repeat(4001) }],
      ['CreateGeneration', '/v1/generations', { topic: 'bell \u0007' }],
      ['CreateGeneration', '/v1/generations', { topic: 'ok', webhook: { url: 'ftp://example.com/hook' } }],
      ['CreateGeneration', '/v1/generations', { topic: 'ok', webhook: { url: 'https://example.com/hook', events: ['batch.completed'] } }],
      ['SeedRequest', '/api/odin/v3/tools/image-generator', { topic: '\u0000' }],
      ['CreateBatch', '/v1/batches', { items: [{ topic: 'x'.repeat(4001) }] }],
      ['CreateBatch', '/v1/batches', { items: [{ topic: 'ok' }], webhook: { url: 'javascript:alert(1)' } }],
    ];
    for (const [name, path, body] of refused) {
      const answer = await postJson(`${stack.baseUrl}${path}`, body);
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
      expect({ body, documentAccepts: validate(name, body) }).toEqual({ body, documentAccepts: false });
    }
    // what the API takes, the document takes too
    const accepted: [string, unknown][] = [
      ['CreateGeneration', { topic: '😀'.repeat(4000) }],
      ['CreateGeneration', { topic: 'tabs\tand\nlines\r\nare fine' }],
      ['CreateGeneration', { topic: 'ok', webhook: { url: 'HTTPS://example.com/hook', events: ['generation.completed'] } }],
      ['CreateBatch', { items: [{ topic: 'ok' }], webhook: { url: 'http://example.com/hook', events: ['batch.completed'] } }],
    ];
    for (const [name, body] of accepted) expect({ body, documentAccepts: validate(name, body) }).toEqual({ body, documentAccepts: true });
    // recovery times: RFC 3339 allows a lower-case t and z, the API does not, and the document says so
    const since = doc.components.schemas.WebhookRecover!.properties.since;
    expect(since.description).toMatch(/upper-case T/);
    const lower = await postJson(`${stack.baseUrl}/v1/webhooks/recover`, { since: '2025-01-01t00:00:00z' });
    expect(lower.status).toBe(400);
  });

  it("usage's days: the description gives the range the schema and the API take", async () => {
    const op = doc.paths['/v1/usage']!.get!;
    const days = op.parameters!.find((p) => p.name === 'days')!.schema;
    expect(op.description).toContain(`days (1..${days.maximum},`);
    expect((await fetch(`${stack.baseUrl}/v1/usage?days=${days.maximum}`)).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}/v1/usage?days=${days.maximum + 1}`)).status).toBe(400);
  });

  it('every component is used, and batch results are described line by line', async () => {
    const text = JSON.stringify({ paths: doc.paths, webhooks: (doc as unknown as { webhooks: unknown }).webhooks, components: doc.components });
    const unused = Object.keys(doc.components.schemas).filter((name) => !text.includes(`"#/components/schemas/${name}"`));
    // before: BatchResultLine and DeliveryAttempt
    expect(unused).toEqual([]);
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'results line' }, { topic: 'results line 2' }] });
    const lines = await eventually(async () => {
      const text = await (await fetch(`${stack.baseUrl}/v1/batches/${batch.body.id}/results`)).text();
      const parsed = text.trim().split('\n').map((l) => JSON.parse(l) as { status: string });
      return parsed.every((l) => l.status === 'completed') ? parsed : undefined;
    });
    const schema = doc.paths['/v1/batches/{id}/results']!.get!.responses['200']!.content!['application/x-ndjson']!.schema!;
    expect(schema.items.$ref).toBe('#/components/schemas/BatchResultLine');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(ajv.validate(schema.items.$ref, line)).toBe(true);
  });

  describe('verifying a delivery, as /docs and the README show it', () => {
    /** The code blocks in `lang` of a Markdown text. */
    const blocks = (md: string, lang: string) => [...md.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```', 'g'))].map((m) => m[1] as string);
    const readme = () => readFile(path.join(__dirname, '..', 'README.md'), 'utf8');

    it('the description /docs shows has the Node and Python examples, word for word as the README', async () => {
      const [node, python] = [blocks(doc.info.description, 'js'), blocks(doc.info.description, 'python')];
      expect(node).toHaveLength(1);
      expect(python).toHaveLength(1);
      expect(node[0]).toContain("import { Webhook } from 'standardwebhooks'");
      expect(python[0]).toContain('from standardwebhooks.webhooks import Webhook');
      const md = await readme();
      expect(blocks(md, 'js')).toContain(node[0]);
      expect(blocks(md, 'python')).toContain(python[0]);
    });

    it('the Python example is valid Python', () => {
      const python = blocks(doc.info.description, 'python')[0] as string;
      const check = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: python, encoding: 'utf8' });
      if (check.error) return; // no Python on this machine: nothing to check it with
      expect(check.stderr).toBe('');
      expect(check.status).toBe(0);
    });

    it('the Node example, run as it is, accepts a delivery signed with the secret the API gives and refuses a forged or stale one', async () => {
      const { body } = await getJson(`${stack.baseUrl}/v1/webhooks/secret`);
      const secret = String(body.secret);
      expect(secret).toMatch(/^whsec_/);
      const file = path.join(__dirname, `.verify-example-${randomBytes(4).toString('hex')}.mjs`);
      const example = blocks(doc.info.description, 'js')[0] as string;
      // the example as an app would use it: its route mounted, the secret handed in
      const app = `const app = express();\napp.use(imagegenHooks(process.argv[2]));\nconst server = app.listen(0, '127.0.0.1', () => console.log(server.address().port));\n`;
      await writeFile(file, `${example}\n${app}`);
      const child = spawn(process.execPath, [file, secret], { stdio: ['ignore', 'pipe', 'ignore'] });
      try {
        const port = await new Promise<number>((resolve, reject) => {
          child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
          child.once('exit', (code) => reject(new Error(`the example exited (${code})`)));
        });
        const send = (payload: string, signedPayload: string, at = new Date()) =>
          fetch(`http://127.0.0.1:${port}/hooks`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'webhook-id': 'msg_example',
              'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
              'webhook-signature': new Webhook(secret).sign('msg_example', at, signedPayload),
            },
            body: payload,
          }).then((res) => res.status);
        const payload = JSON.stringify({ type: 'generation.completed', timestamp: new Date().toISOString(), data: { id: 'gen_example' } });
        expect(await send(payload, payload)).toBe(204);
        expect(await send(payload.replace('gen_example', 'gen_forged'), payload)).toBe(500);
        expect(await send(payload, payload, new Date(Date.now() - 3600_000))).toBe(500);
      } finally {
        child.kill();
        await rm(file, { force: true });
      }
    });
  });
});
