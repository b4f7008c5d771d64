import http from 'node:http';
import { killAllSpawned, spawnApi, type ApiProcess } from './support/processes';
import { keysUnder } from './support/redis';
import { ADMIN, getJson, postJson, startStack, type Stack } from './support/stack';
import { sleep } from './support/net';

const basic = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;

async function adminCall(stack: { baseUrl: string }, method: string, path: string) {
  const res = await fetch(`${stack.baseUrl}${path}`, { method, headers: { Authorization: basic } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

describe('API keys managed at run time', () => {
  let stack: Stack;
  let second: ApiProcess;
  beforeAll(async () => {
    // no API_KEYS: open dev mode until the first managed key exists
    stack = await startStack({ name: 'tenant-keys', worker: false });
    second = await spawnApi({ env: { ...stack.env, PORT: '' }, name: 'api-2' });
  });
  afterAll(async () => {
    await killAllSpawned();
    await stack.close();
  });

  it('a new key works at once on every API process; without keys the API was open, and stays closed once the last is revoked; a revoked key gets 401 everywhere', async () => {
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'open mode' })).status).toBe(202);

    expect((await fetch(`${stack.baseUrl}/admin/tenants/acme/keys`, { method: 'POST' })).status).toBe(401);
    const created = await adminCall(stack, 'POST', '/admin/tenants/acme/keys');
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^key_/), key: expect.stringMatching(/^ig_[0-9a-f]{16}_/), prefix: expect.any(String), createdAt: expect.any(String) });
    const { key, id, prefix } = created.body;
    expect(key.startsWith(`ig_${prefix}_`)).toBe(true);

    // only a hash is stored: the key itself appears nowhere in Redis
    for (const k of await keysUnder(stack.redis, stack.prefix)) {
      if ((await stack.redis.type(k)) === 'hash') expect(JSON.stringify(await stack.redis.hgetall(k))).not.toContain(key.slice(20));
    }

    // keys exist now: no more open mode, on either process
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'no key' })).status).toBe(401);
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'no key' })).status).toBe(401);
    const mine = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'with key' }, { Authorization: `Bearer ${key}` });
    expect(mine.status).toBe(202);
    // the seed's bare form too, on the other process
    expect((await getJson(`${second.baseUrl}/v1/generations/${mine.body.id}`, { Authorization: key })).status).toBe(200);

    const list = await adminCall(stack, 'GET', '/admin/tenants/acme/keys');
    expect(list.body.data).toEqual([{ id, prefix, createdAt: created.body.createdAt }]);
    expect(JSON.stringify(list.body)).not.toContain(key);
    expect((await adminCall(stack, 'GET', '/admin/tenants/globex/keys')).body.data).toEqual([]);
    // another tenant cannot revoke it
    expect((await adminCall(stack, 'DELETE', `/admin/tenants/globex/keys/${id}`)).status).toBe(404);

    expect((await adminCall(stack, 'DELETE', `/admin/tenants/acme/keys/${id}`)).status).toBe(204);
    const revokedAt = Date.now();
    const onSecond = await getJson(`${second.baseUrl}/v1/generations/${mine.body.id}`, { Authorization: `Bearer ${key}` });
    // the very next request after the revocation, on a process that had accepted the key
    expect(onSecond.status).toBe(401);
    expect(onSecond.headers.get('content-type')).toMatch(/problem\+json/);
    process.stdout.write(`[tenants] revoked key refused by the second API ${Date.now() - revokedAt} ms after the revocation\n`);
    expect((await getJson(`${stack.baseUrl}/v1/generations/${mine.body.id}`, { Authorization: `Bearer ${key}` })).status).toBe(401);
    expect((await adminCall(stack, 'DELETE', `/admin/tenants/acme/keys/${id}`)).status).toBe(404);
    // no key left in Redis and no API_KEYS, but keys were in use: still closed, on either process
    // (before: open again, every caller the default tenant, as the last key of a rotation went)
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'open again?' })).status).toBe(401);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'open again?' })).status).toBe(401);
    expect(await (await fetch(`${stack.baseUrl}/gallery/config.json`)).json()).toEqual({ keyRequired: true, maxTopicLength: 4000 });
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'revoked' }, { Authorization: `Bearer ${key}` })).status).toBe(401);
    // a key made before the mark existed (an upgrade): its revocation marks the deployment too
    const older = await adminCall(stack, 'POST', '/admin/tenants/acme/keys');
    await stack.redis.del(stack.api.keys.apiKeysRequired());
    expect((await adminCall(stack, 'DELETE', `/admin/tenants/acme/keys/${older.body.id}`)).status).toBe(204);
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'open again?' })).status).toBe(401);
    // an operator who wants open dev mode back deletes the mark by hand
    await stack.redis.del(stack.api.keys.apiKeysRequired());
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'open again' })).status).toBe(202);
    expect((await postJson(`${second.baseUrl}/v1/generations`, { topic: 'revoked' }, { Authorization: `Bearer ${key}` })).status).toBe(401);
  });

  it('streams opened with a key end within a second of its revocation, on every API process', async () => {
    const created = await adminCall(stack, 'POST', '/admin/tenants/initech/keys');
    const auth = { Authorization: `Bearer ${created.body.key}` };
    // no worker: the generation and the batch stay unfinished, so their streams would run on
    const generation = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'watched' }, auth);
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'watched too' }] }, auth);
    const open = async (path: string) => {
      const res = await fetch(`${second.baseUrl}${path}`, { headers: auth, signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      await reader.read();
      return async () => {
        for (;;) if ((await reader.read()).done) return Date.now();
      };
    };
    const ends = [await open(`/v1/generations/${generation.body.id}/events`), await open(`/v1/batches/${batch.body.id}/events`)];
    await sleep(200);
    const revokedAt = Date.now();
    expect((await adminCall(stack, 'DELETE', `/admin/tenants/initech/keys/${created.body.id}`)).status).toBe(204);
    // before: both went on (heartbeats every 15 s) until the generation and the batch ended, hours later for a batch
    const endedAt = await Promise.all(ends.map((end) => end()));
    for (const at of endedAt) expect(at - revokedAt).toBeLessThan(1000);
    expect((await getJson(`${second.baseUrl}/v1/generations/${generation.body.id}/events`, auth)).status).toBe(401);
  });

  it('a request waiting for its generation when its key is revoked is answered 401 within a second, not the result', async () => {
    const created = await adminCall(stack, 'POST', '/admin/tenants/umbrella/keys');
    const auth = { Authorization: `Bearer ${created.body.key}`, 'Content-Type': 'application/json' };
    // no worker: both waits would run their full length, and a worker started later would complete them
    const answered = (res: Promise<Response>) => res.then(async (r) => ({ status: r.status, at: Date.now(), body: (await r.json()) as { detail?: string } }));
    const waits = [
      answered(fetch(`${second.baseUrl}/v1/generations`, { method: 'POST', headers: { ...auth, Prefer: 'wait=20' }, body: JSON.stringify({ topic: 'waited on' }) })),
      answered(fetch(`${second.baseUrl}/api/odin/v3/tools/image-generator`, { method: 'POST', headers: { ...auth, Authorization: created.body.key }, body: JSON.stringify({ topic: 'waited on too' }) })),
    ];
    await sleep(500);
    const revokedAt = Date.now();
    expect((await adminCall(stack, 'DELETE', `/admin/tenants/umbrella/keys/${created.body.id}`)).status).toBe(204);
    // before: both went on waiting, and answered the result once a worker made it
    for (const res of await Promise.all(waits)) {
      expect({ status: res.status, detail: res.body.detail }).toEqual({ status: 401, detail: 'The API key was revoked while the request waited' });
      expect(res.at - revokedAt).toBeLessThan(1000);
    }
  });

  it('a batch whose key is revoked while its body is uploaded is refused 401, and nothing of it stays', async () => {
    const created = await adminCall(stack, 'POST', '/admin/tenants/hooli/keys');
    const other = await adminCall(stack, 'POST', '/admin/tenants/hooli/keys');
    const url = new URL(`${second.baseUrl}/v1/batches`);
    const lines = Array.from({ length: 300 }, (_, i) => `${JSON.stringify({ topic: `uploaded ${i}` })}\n`);
    const answer = new Promise<{ status: number; body: { detail?: string } }>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { Authorization: `Bearer ${created.body.key}`, 'Content-Type': 'application/x-ndjson' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      // half the body, then the revocation, then the rest
      req.write(lines.slice(0, 150).join(''));
      void sleep(300)
        .then(() => adminCall(stack, 'DELETE', `/admin/tenants/hooli/keys/${created.body.id}`))
        .then((revoked) => {
          expect(revoked.status).toBe(204);
          req.end(lines.slice(150).join(''));
        }, reject);
    });
    // before: 202, the batch made and fed for a key revoked while it uploaded
    expect(await answer).toEqual({ status: 401, body: expect.objectContaining({ detail: 'The API key was revoked while the request waited' }) });
    const listed = await getJson(`${stack.baseUrl}/v1/batches`, { Authorization: `Bearer ${other.body.key}` });
    expect([listed.status, listed.body.data]).toEqual([200, []]);
  });

  it('refuses tenant names that would break key names', async () => {
    for (const bad of ['a:b', 'a*', '.x', 'a[b]', 'x%00y', 'x\u0000y', 'a b', '-x', 'x'.repeat(65)]) {
      const res = await adminCall(stack, 'POST', `/admin/tenants/${encodeURIComponent(bad)}/keys`);
      expect({ bad, status: res.status }).toEqual({ bad, status: 400 });
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    }
  });
});

describe('quotas per tenant', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      name: 'tenant-quotas',
      worker: false,
      env: {
        API_KEYS: 'small:key-small,capped:key-capped,items:key-items,repeats:key-repeats,hooks:key-hooks,writing:key-writing',
        RATE_LIMIT_PER_MINUTE: '1000',
        QUOTA_OVERRIDES: 'small:submissions=3,capped:queued=5,items:items=4/submissions=100,repeats:submissions=2/items=3,hooks:submissions=2/items=3,writing:queued=3100/items=100000',
      },
    });
  });
  afterAll(() => stack.close());

  const jobCount = async () => (await stack.api.queues.generate.getJobCounts('waiting', 'prioritized', 'active', 'delayed')) as Record<string, number>;
  const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);

  it('submissions over the per-minute quota: 429 with Retry-After, RateLimit-* on every submission, nothing enqueued', async () => {
    const answers: Awaited<ReturnType<typeof postJson>>[] = [];
    for (let i = 0; i < 3; i++) answers.push(await postJson(`${stack.baseUrl}/v1/generations`, { topic: `s${i}` }, { Authorization: 'Bearer key-small' }));
    // a window of rate-limiter-flexible starts at the first submission: all three fall in it
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202]);
    expect(answers.map((a) => a.headers.get('ratelimit-remaining'))).toEqual(['2', '1', '0']);
    for (const a of answers) {
      expect(a.headers.get('ratelimit-limit')).toBe('3');
      expect(Number(a.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    }
    const jobsBefore = total(await jobCount());
    const over = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'one too many' }, { Authorization: 'Bearer key-small' });
    expect(over.status).toBe(429);
    expect(over.headers.get('content-type')).toMatch(/problem\+json/);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(over.headers.get('ratelimit-remaining')).toBe('0');
    const seed = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'seed too' }, { Authorization: 'key-small' });
    expect(seed.status).toBe(429);
    expect(total(await jobCount())).toBe(jobsBefore);
    expect(await stack.redis.zcard(`${stack.prefix}:tenant:small:gens`)).toBe(3);
    // another tenant is not held back
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'other' }, { Authorization: 'Bearer key-items' })).status).toBe(202);
  });

  it('items per minute: counted per item, 429 past it', async () => {
    // one was used by the previous test
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `i${i}` }, { Authorization: 'Bearer key-items' })).status);
    expect(statuses).toEqual([202, 202, 202, 429]);
  });

  it('repeats with an Idempotency-Key are answered without costing quota, even once the quota is spent', async () => {
    const as = { Authorization: 'Bearer key-repeats' };
    const batchBody = JSON.stringify({ items: [{ topic: 'r1' }, { topic: 'r2' }] });
    const postBatch = (key: string, body = batchBody) =>
      fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { ...as, 'Content-Type': 'application/json', 'Idempotency-Key': key }, body }).then(async (r) => ({
        status: r.status,
        replayed: r.headers.get('idempotent-replayed'),
        id: ((await r.json()) as { id?: string }).id,
      }));
    // two submissions and three items a minute: a generation and a batch of two spend them all
    const gen = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'once' }, { ...as, 'Idempotency-Key': 'gen-1' });
    const batch = await postBatch('batch-1');
    expect([gen.status, batch.status]).toEqual([202, 202]);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'new' }, as)).status).toBe(429);
    // every repeat is answered as the first was, none refused for quota
    for (let i = 0; i < 3; i++) {
      const again = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'once' }, { ...as, 'Idempotency-Key': 'gen-1' });
      expect([again.status, again.body.id, again.headers.get('idempotent-replayed')]).toEqual([202, gen.body.id, 'true']);
      expect(await postBatch('batch-1')).toEqual({ status: 202, replayed: 'true', id: batch.id });
    }
    // a different body under the same key is still a conflict
    expect((await postBatch('batch-1', JSON.stringify({ items: [{ topic: 'other' }] }))).status).toBe(409);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'not once' }, { ...as, 'Idempotency-Key': 'gen-1' })).status).toBe(409);
  });

  it('a submission refused for its webhook costs no quota', async () => {
    const as = { Authorization: 'Bearer key-hooks' };
    const privateHook = { url: 'http://127.0.0.1:9/hook' };
    for (let i = 0; i < 3; i++) expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `refused ${i}`, webhook: privateHook }, as)).status).toBe(400);
    expect((await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'a' }, { topic: 'b' }, { topic: 'c' }], webhook: privateHook }, as)).status).toBe(400);
    // two submissions and three items a minute, all still there (before: 429, four submissions and three items spent)
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'a' }, { topic: 'b' }, { topic: 'c' }] }, as);
    expect([batch.status, batch.headers.get('ratelimit-remaining')]).toEqual([202, '1']);
  });

  it('a batch being written counts once against the queued cap, not as reserved and queued both', async () => {
    const as = { Authorization: 'Bearer key-writing' };
    // 3,000 items (six chunks) and single submissions while they are written: 3,000 plus these stays under the cap of 3,100
    let batchAnswered = false;
    const batch = postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 3000 }, (_, i) => ({ topic: `written ${i}` })) }, as).finally(() => (batchAnswered = true));
    const singles: { status: number; duringWrite: boolean }[] = [];
    while (!batchAnswered && singles.length < 90) {
      const single = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `beside ${singles.length}` }, as);
      singles.push({ status: single.status, duringWrite: !batchAnswered });
    }
    expect((await batch).status).toBe(202);
    expect(singles.filter((s) => s.duringWrite).length).toBeGreaterThan(0);
    // before: refused with 429 ("… 4,500 items queued or running …") once a chunk was written
    expect(singles.filter((s) => s.status !== 202)).toEqual([]);
    expect(await stack.redis.zcard(`${stack.prefix}:tenant:writing:reserved`)).toBe(0);
  });

  it('the queued cap holds under 20 concurrent submitters', async () => {
    const jobsBefore = total(await jobCount());
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => postJson(`${stack.baseUrl}/v1/generations`, { topic: `c${i}` }, { Authorization: 'Bearer key-capped' })),
    );
    const accepted = answers.filter((a) => a.status === 202).length;
    const refused = answers.filter((a) => a.status === 429);
    expect(accepted + refused.length).toBe(20);
    expect(accepted).toBeGreaterThanOrEqual(1);
    expect(accepted).toBeLessThanOrEqual(5);
    expect(refused[0]?.body.detail).toMatch(/cap of 5/);
    expect(Number(refused[0]?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await stack.redis.zcard(`${stack.prefix}:tenant:capped:gens:queued`)).toBe(accepted);
    expect(total(await jobCount()) - jobsBefore).toBe(accepted);
    // once full, every later one is refused; each request's reservation has ended
    await sleep(50);
    if (accepted === 5) expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'full' }, { Authorization: 'Bearer key-capped' })).status).toBe(429);
    expect(await stack.redis.zcard(`${stack.prefix}:tenant:capped:reserved`)).toBe(0);
    // room comes back as generations end
    const one = answers.find((a) => a.status === 202)!.body.id;
    expect((await fetch(`${stack.baseUrl}/v1/generations/${one}`, { method: 'DELETE', headers: { Authorization: 'Bearer key-capped' } })).status).toBe(200);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'room again' }, { Authorization: 'Bearer key-capped' })).status).toBe(202);
    // a batch the cap could never hold says so, rather than to wait
    const tooBig = await postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 6 }, (_, i) => ({ topic: `big ${i}` })) }, { Authorization: 'Bearer key-capped' });
    expect([tooBig.status, tooBig.body.detail]).toEqual([429, "A submission of 6 items is more than this tenant's cap of 5 items queued or running at once; split it"]);
  });
});
