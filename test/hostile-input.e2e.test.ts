import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { keysUnder, REDIS_URL } from './support/redis';
import { ADMIN, postJson, startStack, type Stack } from './support/stack';
import { eventually } from './support/net';

/**
 * Generated hostile requests against a running API: bodies, headers and paths across every
 * endpoint. Never a 5xx, every error is problem+json, no stack trace or internal path in any
 * body, and a rejected request leaves Redis (keys and jobs) as it was.
 * Reproduce a failure with FUZZ_SEED=<the printed seed>.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
const KEY = 'key-fuzz';
const ADMIN_AUTH = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
const LEAKS = [/\/work\//, /node_modules/, /^\s*at .+:\d+:\d+\)?$/m, /\bat (?:async )?[\w.$<>]+ \(.+:\d+:\d+\)/];

/** A Redis database of this file alone: scanning it per request stays cheap on a shared Redis. */
function ownDatabase(): string {
  const url = new URL(REDIS_URL);
  url.pathname = '/13';
  return url.toString();
}

interface HostileRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Sent over a raw socket, byte for byte (Content-Length lies). */
  raw?: Buffer;
}

// ---- arbitraries

const hostileId = fc.oneof(
  fc.constantFrom('..', '%2e%2e', '..%2f..%2fetc', '%00', 'gen_%00', '*', '?', '[', 'gen_*', 'gen_[a-z]', '\\', '%5C', '%25', '%ff%fe', '%c0%ae', 'gen_0000000000000000000000', 'key_0000000000000000', '__proto__', 'constructor'),
  fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s) || 'x'),
  fc.integer({ min: 200, max: 3000 }).map((n) => 'a'.repeat(n)),
  fc.stringMatching(/^[*?[\]\\^.-]{1,12}$/).map(encodeURIComponent),
);

const deepNesting = fc.integer({ min: 100, max: 20_000 }).chain((n) =>
  fc.constantFrom(`${'['.repeat(n)}${']'.repeat(n)}`, `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`, `{"topic":"x","metadata":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`),
);

const wrongType = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }), fc.string({ maxLength: 20 }));

const objectBody = fc
  .record(
    {
      topic: fc.oneof(wrongType, fc.string({ maxLength: 30 }), fc.constant(''), fc.constant('x'.repeat(4001)), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('\u0000\u0001\u001b[31m', 'a\u2028b', '\ud800', 'line\r\nInjected: yes')),
      style: fc.oneof(wrongType, fc.constantFrom('PHOTOGRAPHIC', 'photographic', '3D', 'VECTOR_IMAGE ', '')),
      size: fc.oneof(wrongType, fc.constantFrom('SQUARE', 'square', 'HUGE')),
      priority: fc.oneof(wrongType, fc.constantFrom('high', 'urgent')),
      metadata: fc.oneof(wrongType, fc.constant({ big: 'x'.repeat(5000) }), fc.jsonValue({ maxDepth: 4 })),
      webhook: fc.oneof(wrongType, fc.record({ url: fc.oneof(fc.webUrl(), fc.constantFrom('http://127.0.0.1/x', 'http://169.254.169.254/latest', 'file:///etc/passwd', 'javascript:1', 'http://[::1]/')), events: fc.oneof(wrongType, fc.constant(['generation.completed', 'nope'])) }, { requiredKeys: [] })),
      items: wrongType,
      extra: wrongType,
    },
    { requiredKeys: [] },
  )
  .map((o) => Buffer.from(JSON.stringify(o)));

const protoBody = fc.constantFrom(
  '{"__proto__":{"admin":true},"topic":"x"}',
  '{"topic":"x","__proto__":{"tenant":"other"}}',
  '{"constructor":{"prototype":{"polluted":1}},"topic":"x"}',
  '{"topic":"x","metadata":{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}}',
  '{"topic":{"toString":"x","valueOf":1}}',
  '{"topic":"x","topic":"y","topic":7}',
  '{"hasOwnProperty":1,"topic":"x"}',
);

const rawBody = fc.oneof(
  fc.constantFrom('', 'null', 'true', '[]', '"topic"', '1e999999', '-0', '123456789012345678901234567890123456789', '{"topic":1e400}', '{"topic":"x",}', '{topic:"x"}', "{'topic':'x'}", 'NaN', '{"topic":"\\u0000"}', '{"topic":"\\ud800"}', '\ufeff{"topic":"x"}', '{"topic":"x"}garbage').map((s) => Buffer.from(s)),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constantFrom(Buffer.from([0x7b, 0x22, 0x74, 0x6f, 0x70, 0x69, 0x63, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0x22, 0x7d]), Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), Buffer.alloc(1024 * 1024 + 10, 0x20)),
  deepNesting.map((s) => Buffer.from(s)),
  objectBody,
  protoBody.map((s) => Buffer.from(s)),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset="bogus"',
  'application/json;;;',
  'APPLICATION/JSON',
  'application/problem+json',
  'application/x-ndjson',
  'text/csv',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/*',
  '*/*',
  '',
  '\u00e9',
);

const authorization = fc.oneof(
  fc.constantFrom(`Bearer ${KEY}`, KEY, `bearer   ${KEY}`, 'Bearer', 'Bearer ', 'Basic', ADMIN_AUTH, `Basic ${Buffer.from('ops:wrong').toString('base64')}`, 'Basic %%%', `Bearer ig_0000000000000000_${'A'.repeat(43)}`, 'ig_', 'Bearer key-fuzz, Bearer other', 'Digest x'),
  fc.string({ maxLength: 100 }).map((s) => s.replace(/[^\t\x20-\x7e]/g, '')),
);

const extraHeaders = fc.record(
  {
    prefer: fc.constantFrom('wait=0', 'wait=1', 'wait=', 'wait=-5', 'wait=abc', 'respond-async', 'wait=0, wait=1', 'handling=strict'),
    'idempotency-key': fc.oneof(fc.string({ maxLength: 50 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')), fc.constant('k'.repeat(2000)), fc.constantFrom('*', '[a]', '..', '')),
    'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus'),
    accept: fc.constantFrom('application/json', 'text/html', '*/*', 'text/event-stream'),
    'last-event-id': fc.constantFrom('0-0', '1-1', '99999999999999999999-0', '-', '-1', '0-0-0', '(0-0', 'x'.repeat(300), '\u00e9'),
  },
  { requiredKeys: [] },
);

/** Every endpoint, with the slots a hostile request can fill. */
function endpoint(realId: string, realBatchId: string) {
  const id = fc.oneof({ weight: 5, arbitrary: hostileId }, { weight: 1, arbitrary: fc.constant(realId) });
  const batchId = fc.oneof({ weight: 5, arbitrary: hostileId }, { weight: 1, arbitrary: fc.constant(realBatchId) });
  const tenant = fc.oneof(fc.constantFrom('fz', 'a:b', '*', '..', '%00', 'x'.repeat(70), '__proto__', 'constructor', '%2e'), hostileId);
  return fc.oneof(
    fc.constant({ method: 'POST', path: '/v1/generations' }),
    fc.constant({ method: 'POST', path: '/api/odin/v3/tools/image-generator' }),
    fc.tuple(fc.constantFrom('status', 'limit', 'cursor', 'x', '__proto__'), fc.constantFrom('queued', '-1', '1e9', 'gen_*', '', '%00', 'a&limit=2&limit=3')).map(([k, v]) => ({ method: 'GET', path: `/v1/generations?${k}=${v}` })),
    id.map((i) => ({ method: 'GET', path: `/v1/generations/${i}` })),
    id.map((i) => ({ method: 'DELETE', path: `/v1/generations/${i}` })),
    // events of a real, unfinished generation would stream until it ends: hostile ids only
    hostileId.map((i) => ({ method: 'GET', path: `/v1/generations/${i}/events` })),
    id.map((i) => ({ method: 'GET', path: `/v1/generations/${i}/deliveries` })),
    fc.tuple(id, hostileId).map(([i, d]) => ({ method: 'POST', path: `/v1/generations/${i}/deliveries/${d}/redeliver` })),
    fc.tuple(hostileId, hostileId).map(([t, n]) => ({ method: 'GET', path: `/files/${t}/${n}` })),
    fc.constant({ method: 'GET', path: '/v1/webhooks/secret' }),
    fc.constant({ method: 'POST', path: '/v1/webhooks/recover' }),
    fc.constantFrom('', '?state=failed', '?state=pending', '?limit=0', '?limit=1e9', '?cursor=-1', '?cursor=99999999999999999', '?cursor=%00', '?limit=2&limit=3').map((q) => ({ method: 'GET', path: `/v1/webhooks/deliveries${q}` })),
    hostileId.map((i) => ({ method: 'GET', path: `/v1/webhooks/recoveries/${i}` })),
    fc.constantFrom('', '?days=0', '?days=-1', '?days=1e9', '?days=abc', '?days=7&x=1', '?days[]=1').map((q) => ({ method: 'GET', path: `/v1/usage${q}` })),
    tenant.map((t) => ({ method: 'POST', path: `/admin/tenants/${t}/keys` })),
    tenant.map((t) => ({ method: 'GET', path: `/admin/tenants/${t}/keys` })),
    fc.tuple(tenant, hostileId).map(([t, k]) => ({ method: 'DELETE', path: `/admin/tenants/${t}/keys/${k}` })),
    tenant.map((t) => ({ method: 'GET', path: `/admin/tenants/${t}/usage` })),
    fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'HEAD').map((m) => ({ method: m, path: '/v1/generations' })),
    fc.constant({ method: 'POST', path: '/v1/batches' }),
    fc.constantFrom('', '?cursor=batch_*', '?cursor=%00', '?limit=0', '?limit=1e9', '?limit=2&limit=3', '?x=1').map((q) => ({ method: 'GET', path: `/v1/batches${q}` })),
    batchId.map((i) => ({ method: 'GET', path: `/v1/batches/${i}` })),
    batchId.map((i) => ({ method: 'DELETE', path: `/v1/batches/${i}` })),
    fc.tuple(batchId, fc.constantFrom('results', 'archive', 'deliveries')).map(([i, r]) => ({ method: 'GET', path: `/v1/batches/${i}/${r}` })),
    // events of a real, unfinished batch would stream until it ends: hostile ids only
    hostileId.map((i) => ({ method: 'GET', path: `/v1/batches/${i}/events` })),
    batchId.map((i) => ({ method: 'POST', path: `/v1/batches/${i}/deliveries/redeliver` })),
    fc.tuple(batchId, hostileId).map(([i, d]) => ({ method: 'POST', path: `/v1/batches/${i}/deliveries/${d}/redeliver` })),
  );
}

/** Content-Length that does not match the body, sent over a raw socket. */
const lyingRequest = fc
  .tuple(fc.constantFrom('/v1/generations', '/api/odin/v3/tools/image-generator', '/admin/tenants/fz/keys'), fc.constantFrom('short', 'long', 'nonsense', 'twice', 'negative', 'chunked-and-length'), rawBody)
  .map(([path, lie, body]): HostileRequest => {
    const b = body.subarray(0, 2000);
    const len = {
      short: String(Math.max(0, b.length - 3)),
      long: String(b.length + 50),
      nonsense: 'abc',
      twice: `${b.length}\r\nContent-Length: ${b.length + 1}`,
      negative: '-1',
      'chunked-and-length': `${b.length}\r\nTransfer-Encoding: chunked`,
    }[lie];
    const auth = path.startsWith('/admin') ? ADMIN_AUTH : `Bearer ${KEY}`;
    const head = `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\nConnection: close\r\n\r\n`;
    return { method: 'POST', path, headers: {}, raw: Buffer.concat([Buffer.from(head), b]) };
  });

function hostileRequest(realId: string, realBatchId: string): fc.Arbitrary<HostileRequest> {
  const normal = fc
    .record({ ep: endpoint(realId, realBatchId), body: fc.option(rawBody, { nil: undefined }), ct: fc.option(contentType, { nil: undefined }), auth: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: authorization }), extra: extraHeaders })
    .map(({ ep, body, ct, auth, extra }): HostileRequest => {
      const headers: Record<string, string> = { ...extra };
      if (ct !== undefined) headers['content-type'] = ct;
      // most requests authenticate, so validation behind authentication is reached
      headers.authorization = auth ?? (ep.path.startsWith('/admin') ? ADMIN_AUTH : `Bearer ${KEY}`);
      return { method: ep.method, path: ep.path, headers, ...(body && !['GET', 'HEAD', 'OPTIONS'].includes(ep.method) ? { body } : {}) };
    });
  return fc.oneof({ weight: 12, arbitrary: normal }, { weight: 1, arbitrary: lyingRequest });
}

// ---- sending

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

async function sendRaw(port: number, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      if (!text) return resolve({ status: 0, contentType: '', body: '' });
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      const [head, ...rest] = text.split('\r\n\r\n');
      resolve({ status: Number(m[1]), contentType: /\r\ncontent-type: *([^\r\n]*)/i.exec(head!)?.[1] ?? '', body: rest.join('\r\n\r\n') });
    });
    socket.on('connect', () => {
      socket.write(bytes);
      // a promised body that never comes: after a while the client gives up and half-closes,
      // and the server must let go of the request rather than hang or act on part of it
      setTimeout(() => socket.end(), 200);
    });
  });
}

async function send(baseUrl: string, port: number, r: HostileRequest): Promise<Answer> {
  if (r.raw) return sendRaw(port, r.raw);
  const res = await fetch(`${baseUrl}${r.path}`, { method: r.method, headers: r.headers, ...(r.body ? { body: r.body } : {}), redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Keys that change by themselves (expiring windows), so are left out of the before/after comparison. */
const SELF_EXPIRING = /:quota:|:reserved$/;

// below the default (32 MiB), so the cases that send a batch past its limit stay quick
const BATCH_LIMIT = 4 * 1024 * 1024;

describe('hostile input', () => {
  let stack: Stack;
  let port: number;
  let realId: string;
  let realBatchId: string;
  beforeAll(async () => {
    stack = await startStack({
      name: 'hostile',
      worker: false,
      redisUrl: ownDatabase(),
      env: { API_KEYS: `fz:${KEY}`, RATE_LIMIT_PER_MINUTE: '1000000', QUOTA_ITEMS_PER_MINUTE: '1000000', SYNC_WAIT_TIMEOUT_MS: '100', BATCH_MAX_BODY_BYTES: String(BATCH_LIMIT) },
    });
    port = Number(new URL(stack.baseUrl).port);
    realId = (await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'the one real generation' }, { Authorization: `Bearer ${KEY}` })).body.id;
    realBatchId = (await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'the one real batch' }] }, { Authorization: `Bearer ${KEY}` })).body.id;
  });
  afterAll(() => stack.close());

  const jobs = async () => Object.values(await stack.api.queues.generate.getJobCounts()).reduce((a, b) => a + b, 0);
  const state = async () => ({ keys: (await keysUnder(stack.redis, stack.prefix)).filter((k) => !SELF_EXPIRING.test(k)), jobs: await jobs() });

  it(`${RUNS} generated hostile requests: no 5xx, problem+json errors, nothing leaked, nothing written when rejected`, async () => {
    process.stdout.write(`[hostile-input] seed ${SEED} (FUZZ_SEED=${SEED} reproduces), ${RUNS} runs\n`);
    let rejected = 0;
    let baseline: Awaited<ReturnType<typeof state>> | undefined;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(hostileRequest(realId, realBatchId), async (r) => {
        // what Redis held after the last accepted request (rejected ones must leave it so)
        const before = (baseline ??= await state());
        const a = await send(stack.baseUrl, port, r);
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        const where = `${r.method} ${r.path.slice(0, 120)} -> ${a.status} ${a.body.slice(0, 300)}`;
        // 0: the raw socket was closed without an answer (the server gave up on a body that never came)
        if (a.status !== 0) expect({ where, serverError: a.status >= 500 }).toEqual({ where, serverError: false });
        for (const leak of LEAKS) expect({ where, leak: leak.test(a.body) }).toEqual({ where, leak: false });
        if (a.status >= 400) {
          rejected++;
          expect({ where, contentType: a.contentType }).toEqual({ where, contentType: expect.stringMatching(/^application\/problem\+json/) });
          // HEAD answers carry no body by definition
          const problem = r.method === 'HEAD' ? { status: a.status, title: '', detail: '' } : JSON.parse(a.body);
          expect({ where, status: problem.status, title: typeof problem.title, detail: typeof problem.detail }).toEqual({ where, status: a.status, title: 'string', detail: 'string' });
        }
        if (a.status >= 400 || a.status === 0) {
          const after = await state();
          expect({ where, ...after }).toEqual({ where, ...before });
        } else {
          baseline = undefined;
        }
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    process.stdout.write(`[hostile-input] answers by status ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}\n`);
    // the generators reach validation: most requests are refused, and not all for one reason
    expect(rejected).toBeGreaterThan(RUNS / 2);
    expect(statuses.size).toBeGreaterThanOrEqual(5);
  }, 180_000);

  it('an Expect the server cannot meet is answered 417 as problem+json, and nothing is acted on', async () => {
    const before = await state();
    const body = JSON.stringify({ topic: 'expecting something' });
    const answer = await sendRaw(
      port,
      Buffer.from(`POST /v1/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nExpect: something\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
    );
    expect(answer.status).toBe(417);
    expect(answer.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 417, title: 'Expectation failed' });
    expect(await state()).toEqual(before);
  });

  it('an HTTP/1.1 request without Host is answered 400 as problem+json, and nothing is acted on', async () => {
    const before = await state();
    const body = JSON.stringify({ topic: 'from nowhere' });
    const answer = await sendRaw(port, Buffer.from(`POST /v1/generations HTTP/1.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    expect(answer.status).toBe(400);
    expect(answer.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 400, detail: 'An HTTP/1.1 request must carry a Host header' });
    expect(await state()).toEqual(before);
    // HTTP/1.0 has no Host to require
    const old = await sendRaw(port, Buffer.from('GET /healthz HTTP/1.0\r\n\r\n'));
    expect(old.status).toBe(200);
  });

  it('bytes that are not UTF-8 are refused with 400 on every body the API reads, not read as U+FFFD', async () => {
    const before = await state();
    // é in Latin-1 where UTF-8 was said (or meant, by default)
    const latin1 = (text: string) => Buffer.from(text, 'latin1');
    const bodies: [string, string, Buffer][] = [
      ['/v1/generations', 'application/json', latin1('{"topic":"caf\u00e9 at noon"}')],
      ['/api/odin/v3/tools/image-generator', 'application/json; charset=utf-8', latin1('{"topic":"caf\u00e9 at noon","style":"PHOTOGRAPHIC","size":"SQUARE"}')],
      ['/v1/batches', 'application/json', latin1('{"items":[{"topic":"caf\u00e9 at noon"}]}')],
      ['/v1/batches', 'application/x-ndjson', latin1('{"topic":"caf\u00e9 at noon"}\n')],
      ['/v1/batches', 'text/csv', latin1('topic,style,size\ncaf\u00e9 at noon,PHOTOGRAPHIC,SQUARE\n')],
    ];
    for (const [path, type, body] of bodies) {
      const res = await fetch(`${stack.baseUrl}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': type }, body });
      const problem = (await res.json()) as { errors?: unknown };
      expect({ path, type, status: res.status, contentType: res.headers.get('content-type'), errors: problem.errors }).toEqual({
        path,
        type,
        status: 400,
        contentType: expect.stringMatching(/^application\/problem\+json/),
        errors: [{ path: '(body)', message: 'is not valid UTF-8' }],
      });
    }
    expect(await state()).toEqual(before);
    // a charset said is honoured: the same bytes as Latin-1 are the topic they spell
    const said = await fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'text/csv; charset=latin1' }, body: latin1('topic\ncaf\u00e9 at noon\n') });
    expect(said.status).toBe(202);
    const results = await (await fetch(`${stack.baseUrl}/v1/batches/${((await said.json()) as { id: string }).id}/results`, { headers: { Authorization: `Bearer ${KEY}` } })).text();
    const item = JSON.parse(results.trim());
    expect(((await (await fetch(`${stack.baseUrl}/v1/generations/${item.id}`, { headers: { Authorization: `Bearer ${KEY}` } })).json()) as { request: { topic: string } }).request.topic).toBe('caf\u00e9 at noon');
  });

  it('a client that goes away in the middle of its body leaves no connection behind', async () => {
    const before = await stack.connections();
    const cut = (head: string, part: string) =>
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end(head + part, () => resolve()));
        socket.on('error', reject);
      });
    const json = `POST /v1/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n`;
    const chunked = `POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n`;
    await Promise.all(Array.from({ length: 10 }, () => [cut(json, '{"topic":'), cut(chunked, '10\r\n{"topic":"a"}\n')]).flat());
    const left = await eventually(async () => {
      const n = await stack.connections();
      return n <= before ? n : undefined;
    }, 5_000, 50).catch(async () => stack.connections());
    expect(left).toBeLessThanOrEqual(before);
  });

  it('a body declared larger than the limit is answered 413 at once, and a client that never ends it is cut off', async () => {
    const before = await state();
    const ask = (path: string, type: string) =>
      new Promise<{ text: string; answeredMs: number; closedMs: number }>((resolve) => {
        const started = Date.now();
        const socket = net.connect(port, '127.0.0.1');
        let text = '';
        let answeredMs = -1;
        const timer = setTimeout(() => resolve({ text, answeredMs, closedMs: -1 }), 10_000);
        socket.on('data', (c) => {
          if (answeredMs < 0) answeredMs = Date.now() - started;
          text += c.toString('latin1');
        });
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ text, answeredMs, closedMs: Date.now() - started });
        });
        // ten gigabytes promised, a few bytes sent, and the client keeps the connection open
        socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: ${type}\r\nContent-Length: 10000000000\r\n\r\n{"topic":"x"`);
      });
    const answers = await Promise.all(
      ([['/v1/generations', 'application/json'], ['/api/odin/v3/tools/image-generator', 'application/json'], ['/v1/batches', 'application/json'], ['/v1/batches', 'text/csv']] as const).map(async ([path, type]) => ({ path, type, ...(await ask(path, type)) })),
    );
    for (const a of answers) {
      expect({ path: a.path, type: a.type, status: /^HTTP\/1\.1 (\d{3})/.exec(a.text)?.[1] }).toEqual({ path: a.path, type: a.type, status: '413' });
      expect(a.text).toMatch(/content-type: application\/problem\+json/i);
      expect(a.answeredMs).toBeLessThan(1000);
      // cut off after the linger (5 s), not after ten gigabytes or the request timeout
      expect(a.closedMs).toBeGreaterThan(0);
    }
    expect(await state()).toEqual(before);
  });

  it('a body sent in chunks is answered 413 as soon as it passes the limit, and a client that never ends it is cut off', async () => {
    const before = await state();
    const MiB = 1024 * 1024;
    const ask = (path: string, type: string, limit: number) =>
      new Promise<{ text: string; answeredMs: number; closedMs: number }>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        let text = '';
        let sentAll = -1;
        let answeredMs = -1;
        const timer = setTimeout(() => resolve({ text, answeredMs, closedMs: -1 }), 15_000);
        socket.on('data', (c) => {
          if (answeredMs < 0) answeredMs = sentAll < 0 ? 0 : Date.now() - sentAll;
          text += c.toString('latin1');
        });
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ text, answeredMs, closedMs: sentAll < 0 ? -1 : Date.now() - sentAll });
        });
        socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n\r\n`);
        // the limit and a little more, in 64 KiB chunks; then the client keeps the connection open without ending the body
        const chunk = Buffer.concat([Buffer.from(`${(64 * 1024).toString(16)}\r\n`), Buffer.alloc(64 * 1024, ' '), Buffer.from('\r\n')]);
        let left = limit / (64 * 1024) + 2;
        const more = () => {
          while (left > 0) {
            left--;
            if (!socket.write(chunk)) return void socket.once('drain', more);
          }
          sentAll = Date.now();
        };
        more();
      });
    const answers = await Promise.all(
      (
        [
          ['/v1/generations', 'application/json', MiB],
          ['/api/odin/v3/tools/image-generator', 'application/json', MiB],
          ['/v1/batches', 'application/json', BATCH_LIMIT],
          ['/v1/batches', 'text/csv', BATCH_LIMIT],
        ] as const
      ).map(async ([path, type, limit]) => ({ path, type, ...(await ask(path, type, limit)) })),
    );
    for (const a of answers) {
      expect({ path: a.path, type: a.type, status: /^HTTP\/1\.1 (\d{3})/.exec(a.text)?.[1] }).toEqual({ path: a.path, type: a.type, status: '413' });
      expect(a.text).toMatch(/content-type: application\/problem\+json/i);
      // answered while the body is still coming (a JSON batch once the streaming parser has read the limit's worth),
      // and cut off after the linger (5 s), not when the request times out
      expect(a.answeredMs).toBeGreaterThanOrEqual(0);
      expect(a.closedMs).toBeGreaterThan(a.answeredMs);
    }
    expect(await state()).toEqual(before);
  });

  it('a compressed body past the limit on the wire is answered 413 and acted on by nothing, though it inflates to less', async () => {
    const before = await state();
    /** Quota counters and queued-cap reservations (they expire by themselves, so only what a request adds can show). */
    const quotas = async () => {
      const out: Record<string, string[]> = {};
      for (const key of (await keysUnder(stack.redis, stack.prefix)).filter((k) => SELF_EXPIRING.test(k))) {
        out[key] = (await stack.redis.type(key)) === 'zset' ? await stack.redis.zrange(key, '0', '-1') : [String(await stack.redis.get(key))];
      }
      return out;
    };
    const quotasBefore = await quotas();
    const MiB = 1024 * 1024;
    // stored (level 0) gzip: a few bytes per 64 KiB block more than the body, so just over the limit on the wire
    const send = (route: string, type: string, limit: number, head: string, tail: string, pad: string) =>
      new Promise<{ status: number; wire: number; inflated: number }>((resolve, reject) => {
        const inflated = limit - 40;
        const body = Buffer.from(head + pad.repeat(inflated - head.length - tail.length) + tail);
        const wire = zlib.gzipSync(body, { level: 0 });
        const req = http.request(`${stack.baseUrl}${route}`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': type, 'Content-Encoding': 'gzip' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, wire: wire.length, inflated: body.length }));
        });
        req.on('error', reject);
        // in pieces, with no length declared: chunked
        for (let at = 0; at < wire.length; at += 64 * 1024) req.write(wire.subarray(at, at + 64 * 1024));
        req.end();
      });
    const cases = [
      ['/v1/generations', 'application/json', MiB, '{"topic":"inflates under the limit"', '}', ' '],
      ['/api/odin/v3/tools/image-generator', 'application/json', MiB, '{"topic":"inflates under the limit"', '}', ' '],
      ['/v1/batches', 'application/json', BATCH_LIMIT, '{"items":[{"topic":"inflates under the limit"}]', '}', ' '],
      ['/v1/batches', 'application/x-ndjson', BATCH_LIMIT, '{"topic":"inflates under the limit"}\n', '', '\n'],
    ] as const;
    for (const [route, type, limit, head, tail, pad] of cases) {
      const answer = await send(route, type, limit, head, tail, pad);
      expect({ route, type, ...answer }).toEqual({ route, type, status: 413, wire: expect.any(Number), inflated: limit - 40 });
      expect(answer.wire).toBeGreaterThan(limit);
    }
    // the routes never ran: no generation, batch, job, quota use or reservation written
    await new Promise((r) => setTimeout(r, 300));
    expect(await state()).toEqual(before);
    const quotasAfter = await quotas();
    for (const [key, values] of Object.entries(quotasAfter)) {
      const earlier = quotasBefore[key] ?? [];
      if (/:reserved$/.test(key)) expect({ key, added: values.filter((v) => !earlier.includes(v)) }).toEqual({ key, added: [] });
      else expect({ key, count: Number(values[0]) }).toEqual({ key, count: earlier.length ? expect.any(Number) : 0 });
      if (!/:reserved$/.test(key) && earlier.length) expect(Number(values[0])).toBeLessThanOrEqual(Number(earlier[0]));
    }
  });

  it('a client that sends its oversized body in full before reading still gets the 413, on a connection it can use again', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 'y');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: Buffer | string) =>
      new Promise<{ status: number; body: string; socket: unknown }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/generations', agent, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, socket: req.socket }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const refused = await post(big);
      expect(refused.status).toBe(413);
      expect(JSON.parse(refused.body)).toMatchObject({ status: 413, title: 'Payload too large' });
      const next = await post(JSON.stringify({ topic: 'after a refusal' }));
      expect(next.status).toBe(202);
      expect(next.socket).toBe(refused.socket);
    } finally {
      agent.destroy();
    }
    // a client that asks to close the connection (as Python's urllib does) and writes 20 MB before reading
    const closing = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (c) => (text += c.toString('latin1')));
      socket.on('error', (e) => resolve(`error ${e.message}`));
      socket.on('close', () => resolve(text));
      socket.write(`POST /v1/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${20 * 1024 * 1024}\r\n\r\n`);
      const piece = Buffer.alloc(1024 * 1024, 'y');
      let left = 20;
      const more = () => {
        while (left > 0) {
          left--;
          if (!socket.write(piece)) return void socket.once('drain', more);
        }
      };
      more();
    });
    expect(closing).toMatch(/^HTTP\/1\.1 413 /);
  });
});
