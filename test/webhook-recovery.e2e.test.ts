import { spawn } from 'node:child_process';
import path from 'node:path';
import { eventually, sleep } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * A tenant's recovery after an endpoint outage: every delivery that ended failed or exhausted in a
 * time window is sent again, in the background, under its own webhook-id; another tenant's are
 * neither sent nor visible.
 */
const KEYS = { a: 'key-tenant-a-0123456789', b: 'key-tenant-b-0123456789', c: 'key-tenant-c-0123456789' };
const asA = { Authorization: `Bearer ${KEYS.a}` };
const asB = { Authorization: `Bearer ${KEYS.b}` };
const asC = { Authorization: `Bearer ${KEYS.c}` };

describe('webhook recovery', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    // 0.0001: the whole schedule (about 28 h) in about 10 s
    stack = await startStack({ name: 'webhook-recovery', env: { WEBHOOK_ALLOW_PRIVATE: 'true', API_KEYS: `a:${KEYS.a},b:${KEYS.b},c:${KEYS.c}`, WEBHOOK_RETRY_SCALE: '0.0001' } });
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`, asA)).body.secret, (await getJson(`${stack.baseUrl}/v1/webhooks/secret`, asB)).body.secret];
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  const submit = async (path: string, as: Record<string, string>) => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `recover ${path}`, webhook: { url: receiver.url(path) } }, as);
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  /** The generations' deliveries, once each has ended (not pending). */
  const ended = (ids: string[], as: Record<string, string>) =>
    eventually(async () => {
      const last = await Promise.all(ids.map(async (id) => (await getJson(`${stack.baseUrl}/v1/generations/${id}/deliveries`, as)).body.data.at(-1)));
      return last.every((row) => row && row.state !== 'pending') ? last : undefined;
    }, 60_000);
  const recover = (body: unknown, as = asA, type = 'application/json') =>
    fetch(`${stack.baseUrl}/v1/webhooks/recover`, { method: 'POST', headers: { 'Content-Type': type, ...as }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const finished = (id: string, as = asA) =>
    eventually(async () => {
      const got = await getJson(`${stack.baseUrl}/v1/webhooks/recoveries/${id}`, as);
      return got.body.status === 'completed' ? got.body : undefined;
    }, 30_000);
  const idsOf = (path: string) => receiver.on(path).map((r) => r.headers['webhook-id']);
  /** `imagegen webhooks <args>` from the built CLI, as tenant a unless another key is given. */
  const webhooksCli = (args: string[], key = KEYS.a) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [path.resolve(__dirname, '../apps/cli/dist/main.js'), 'webhooks', ...args], { env: { ...process.env, IMAGEGEN_URL: stack.baseUrl, IMAGEGEN_API_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code) => resolve({ code, out, err }));
    });
  const cli = (...args: string[]) => webhooksCli(['recover', ...args]);
  /** The JSON lines a CLI command printed. */
  const lines = (out: string) => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));

  it('sends again, in the background, every delivery of the tenant that ended in the window; others stay as they are', async () => {
    // before the window: two refused (410 ends each at once)
    receiver.script('/early', 410);
    const early = [await submit('/early', asA), await submit('/early', asA)];
    expect((await ended(early, asA)).map((r) => r.state)).toEqual(['failed', 'failed']);
    await sleep(20);
    const since = new Date().toISOString();
    await sleep(20);
    // in the window: three refused, one never answered 2xx (exhausted), and another tenant's refused
    receiver.script('/down', 410);
    receiver.script('/flaky', 500);
    receiver.script('/other', 410);
    const down = [await submit('/down', asA), await submit('/down', asA), await submit('/down', asA)];
    const flaky = await submit('/flaky', asA);
    const other = await submit('/other', asB);
    expect((await ended(down, asA)).map((r) => r.state)).toEqual(['failed', 'failed', 'failed']);
    expect((await ended([flaky], asA))[0]).toMatchObject({ state: 'exhausted', attempt: 9 });
    expect((await ended([other], asB))[0]).toMatchObject({ state: 'failed' });
    const before = { early: idsOf('/early'), down: idsOf('/down'), flaky: idsOf('/flaky'), other: idsOf('/other') };
    expect([before.early.length, before.down.length, before.flaky.length, before.other.length]).toEqual([2, 3, 9, 1]);

    // the tenant's listing of what did not arrive: newest ending first, with what the endpoint answered, paged without gaps or repeats
    const list = async (query: string, as = asA) => (await getJson(`${stack.baseUrl}/v1/webhooks/deliveries${query}`, as)).body;
    const failedNow = await list('?limit=100');
    // (the three refused together end in whatever order their deliveries ran)
    const rows = failedNow.data.map((r: any) => [r.generationId, r.state, r.status]);
    expect([rows[0], new Set(rows.slice(1, 4).map(String)), new Set(rows.slice(4).map(String))]).toEqual([
      [flaky, 'exhausted', 500],
      new Set(down.map((id) => `${id},failed,410`)),
      new Set(early.map((id) => `${id},failed,410`)),
    ]);
    const endedAt = failedNow.data.map((r: any) => Date.parse(r.endedAt));
    expect(endedAt).toEqual([...endedAt].sort((x: number, y: number) => y - x));
    expect(failedNow.data[0]).toMatchObject({ event: 'generation.completed', attempts: 9, error: 'answered 500', webhookId: before.flaky[0] });
    expect(failedNow.hasMore).toBe(false);
    const paged: string[] = [];
    const sizes: number[] = [];
    for (let cursor = ''; ; ) {
      const page = await list(`?limit=2${cursor}`);
      paged.push(...page.data.map((r: any) => r.id));
      sizes.push(page.data.length);
      if (!page.nextCursor) break;
      cursor = `&cursor=${page.nextCursor}`;
    }
    expect(paged).toEqual(failedNow.data.map((r: any) => r.id));
    // six rows, two a page: the third page says it is the last (before: hasMore, and an empty fourth)
    expect(sizes).toEqual([2, 2, 2]);
    expect((await list('?state=exhausted')).data.map((r: any) => r.generationId)).toEqual([flaky]);
    expect((await list('', asB)).data.map((r: any) => r.generationId)).toEqual([other]);
    for (const query of ['?state=delivered', '?limit=0', '?cursor=abc', '?x=1']) {
      const res = await getJson(`${stack.baseUrl}/v1/webhooks/deliveries${query}`, asA);
      expect([query, res.status, res.headers.get('content-type')]).toEqual([query, 400, expect.stringMatching(/problem\+json/)]);
    }

    // the endpoints are back
    for (const path of ['/early', '/down', '/flaky', '/other']) receiver.script(path, 200);

    // refused requests start nothing
    for (const [body, type] of [[{}, 'application/json'], [{ since: 'yesterday' }, 'application/json'], [{ since: '1969-12-31T23:59:59Z' }, 'application/json'], [{ since, until: '2000-01-01T00:00:00Z' }, 'application/json'], [{ since, states: ['delivered'] }, 'application/json'], [{ since, extra: 1 }, 'application/json'], ['since=now', 'text/plain']] as const) {
      const res = await recover(body, asA, type);
      expect([res.status, res.headers.get('content-type')]).toEqual([type === 'text/plain' ? 415 : 400, expect.stringMatching(/^application\/problem\+json/)]);
    }

    // held in the queue for a moment, so the calls below all meet it running
    await stack.api.queues.webhooks.pause();
    let body: any;
    try {
      // two asked for at once (a client retrying one it thinks was lost): both get the one recovery
      const started = await Promise.all([recover({ since }), recover({ since })]);
      expect(started.map((r) => r.status)).toEqual([202, 202]);
      const [first, second] = (await Promise.all(started.map((r) => r.json()))) as any[];
      body = first;
      expect(second.id).toBe(body.id);
      for (const r of started) expect(r.headers.get('location')).toBe(`${stack.baseUrl}/v1/webhooks/recoveries/${body.id}`);
      expect(body).toMatchObject({ id: expect.stringMatching(/^rcv_/), status: 'running', since: new Date(since).toISOString(), states: ['failed', 'exhausted'], scanned: 0, redelivered: 0 });
      // another window while it runs: a 409 that names it
      const refused = await recover({ since: new Date(Date.parse(since) - 1000).toISOString() });
      expect([refused.status, refused.headers.get('content-type'), refused.headers.get('location'), ((await refused.json()) as any).detail]).toEqual([409, expect.stringMatching(/problem\+json/), `${stack.baseUrl}/v1/webhooks/recoveries/${body.id}`, expect.stringContaining(body.id)]);
    } finally {
      await stack.api.queues.webhooks.resume();
    }
    const done = await finished(body.id);
    expect(done).toMatchObject({ scanned: 4, redelivered: 4, finishedAt: expect.any(String) });

    // each under its own webhook-id and bytes, verified with tenant a's secret; nothing before the window, nothing of tenant b
    await eventually(async () => (receiver.on('/down').length === 6 && receiver.on('/flaky').length === 10 ? true : undefined));
    await sleep(300);
    const resent = [...receiver.on('/down').slice(3), ...receiver.on('/flaky').slice(9)];
    expect(new Set(resent.map((r) => r.headers['webhook-id']))).toEqual(new Set([...before.down, before.flaky[0]]));
    expect(resent.map((r) => r.verifiedWith)).toEqual([[0], [0], [0], [0]]);
    expect(resent.map((r) => r.answeredWith)).toEqual([200, 200, 200, 200]);
    expect([idsOf('/early').length, idsOf('/other').length, idsOf('/down').length, idsOf('/flaky').length]).toEqual([2, 1, 6, 10]);
    expect((await ended([...down, flaky], asA)).map((r) => r.state)).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);
    // arrived now: out of the listing, which keeps the two before the window
    expect((await list('')).data.map((r: any) => r.generationId).sort()).toEqual([...early].sort());

    // another tenant cannot read it; an unknown id is 404 too
    for (const [id, as] of [[body.id, asB], ['rcv_nosuch', asA], ['not-an-id', asA]] as const) {
      const res = await getJson(`${stack.baseUrl}/v1/webhooks/recoveries/${id}`, as);
      expect([res.status, res.body.status]).toEqual([404, 404]);
    }

    // once delivered, nothing is left to send; a window from before reaches the early ones only
    expect(await finished(((await (await recover({ since })).json()) as any).id)).toMatchObject({ scanned: 4, redelivered: 0 });
    const wider = await finished(((await (await recover({ since: new Date(Date.now() - 3600_000).toISOString(), states: ['failed'] })).json()) as any).id);
    expect(wider).toMatchObject({ scanned: 6, redelivered: 2 });
    await eventually(async () => (receiver.on('/early').length === 4 ? true : undefined));
    expect(new Set(idsOf('/early').slice(2))).toEqual(new Set(before.early));

    // tenant b's own recovery sends tenant b's, signed with its secret
    const theirs = await finished(((await (await recover({ since }, asB)).json()) as any).id, asB);
    expect(theirs).toMatchObject({ scanned: 1, redelivered: 1 });
    const got = await eventually(async () => (receiver.on('/other').length === 2 ? receiver.on('/other') : undefined));
    expect([got[1]!.headers['webhook-id'], got[1]!.verifiedWith]).toEqual([before.other[0], [1]]);
  });

  it('the CLI starts a recovery and follows it to the end', async () => {
    receiver.script('/cli', 410);
    const id = await submit('/cli', asA);
    expect((await ended([id], asA))[0]).toMatchObject({ state: 'failed' });
    receiver.script('/cli', 200);
    const { code, out, err } = await cli('--since', '2m');
    expect({ code, err }).toEqual({ code: 0, err: expect.stringMatching(/^rcv_[a-z0-9]+: recovering deliveries that ended between /) });
    // what the earlier test left is delivered: only this one is sent again
    expect(out).toMatch(/^rcv_[a-z0-9]+: 1 of \d+ ended deliveries sent again\n$/);
    const got = await eventually(async () => (receiver.on('/cli').length === 2 ? receiver.on('/cli') : undefined));
    expect([got[1]!.headers['webhook-id'], got[1]!.verifiedWith, got[1]!.answeredWith]).toEqual([got[0]!.headers['webhook-id'], [0], 200]);

    // a time it cannot read, or both scopes at once: a clear line, exit 1, nothing started
    expect(await cli('--since', 'yesterday')).toEqual({ code: 1, out: '', err: expect.stringMatching(/ISO 8601/) });
    expect(await cli('--since', '2m', '--batch', 'batch_x')).toEqual({ code: 1, out: '', err: expect.stringMatching(/either --since .* or --batch/) });
  });

  it("the CLI sends again a batch's deliveries that did not arrive (its item's and its own) and follows it to the end", async () => {
    // down for the item's generation.completed and the batch.completed (410 ends each at once), back after
    receiver.script('/cli-batch', 410, 410, 200);
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'cli batch item' }], webhook: { url: receiver.url('/cli-batch') } }, asA);
    expect(batch.status).toBe(202);
    await eventually(async () => {
      const refused = (await getJson(`${stack.baseUrl}/v1/webhooks/deliveries?limit=100`, asA)).body.data.filter((d: any) => idsOf('/cli-batch').includes(d.webhookId));
      return refused.length === 2 ? refused : undefined;
    });
    const refused = idsOf('/cli-batch');
    const { code, out, err } = await cli('--batch', batch.body.id);
    expect({ code, err }).toEqual({ code: 0, err: `${out.split(':')[0]}: redelivering the deliveries of ${batch.body.id}\n` });
    expect(out).toMatch(/^rcv_[a-z0-9]+: 2 of 2 deliveries looked at sent again\n$/);
    const got = await eventually(async () => (receiver.on('/cli-batch').length === 4 ? receiver.on('/cli-batch') : undefined));
    expect(got.slice(2).map((r) => [r.verifiedWith, r.answeredWith])).toEqual([[[0], 200], [[0], 200]]);
    expect(new Set(got.slice(2).map((r) => r.headers['webhook-id']))).toEqual(new Set(refused));
  });
  it("the CLI lists the tenant's deliveries that did not arrive, and prints and rotates its signing secret", async () => {
    receiver.script('/cli-failed', 410);
    await ended([await submit('/cli-failed', asB), await submit('/cli-failed', asB), await submit('/cli-failed', asB)], asB);
    const all = (await getJson(`${stack.baseUrl}/v1/webhooks/deliveries?limit=100`, asB)).body.data as unknown[];
    expect(all.length).toBeGreaterThanOrEqual(3);
    const listed = await webhooksCli(['failed'], KEYS.b);
    expect([listed.code, lines(listed.out)]).toEqual([0, all]);
    const two = await webhooksCli(['failed', '--limit', '2', '--state', 'failed'], KEYS.b);
    expect([two.code, lines(two.out)]).toEqual([0, all.filter((d: any) => d.state === 'failed').slice(0, 2)]);
    // tenant a's listing is its own
    expect(lines((await webhooksCli(['failed'])).out).some((d) => all.some((b: any) => b.id === d.id))).toBe(false);
    expect((await webhooksCli(['failed', '--limit', '0'], KEYS.b)).code).toBe(1);

    const secret = await webhooksCli(['secret'], KEYS.b);
    expect([secret.code, secret.out]).toEqual([0, `${receiver.secrets[1]}\n`]);
    const rotated = await webhooksCli(['secret', '--rotate'], KEYS.b);
    expect([rotated.code, rotated.out.trim()]).toEqual([0, (await getJson(`${stack.baseUrl}/v1/webhooks/secret`, asB)).body.secret]);
    expect(rotated.out.trim()).toMatch(/^whsec_/);
    expect(rotated.out.trim()).not.toBe(receiver.secrets[1]);
  });
  it('the CLI lists past one page: every delivery that did not arrive, each once, in the order of the pages', async () => {
    receiver.script('/cli-pages', 410);
    // 101 items and the batch itself: 102 refused deliveries, more than a page (100) holds
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 101 }, (_, i) => ({ topic: `page item ${i}` })), webhook: { url: receiver.url('/cli-pages') } }, asC);
    expect(batch.status).toBe(202);
    const pages = await eventually(async () => {
      const first = (await getJson(`${stack.baseUrl}/v1/webhooks/deliveries?limit=100`, asC)).body;
      if (first.data.length < 100 || first.nextCursor === null) return undefined;
      const second = (await getJson(`${stack.baseUrl}/v1/webhooks/deliveries?limit=100&cursor=${encodeURIComponent(first.nextCursor)}`, asC)).body;
      return first.data.length + second.data.length === 102 ? [...first.data, ...second.data] : undefined;
    }, 180_000);
    const listed = await webhooksCli(['failed'], KEYS.c);
    expect(listed.code).toBe(0);
    expect(lines(listed.out)).toEqual(pages);
    expect(new Set(pages.map((d: any) => d.id)).size).toBe(102);
    const some = await webhooksCli(['failed', '--limit', '101'], KEYS.c);
    expect(lines(some.out)).toEqual(pages.slice(0, 101));
  }, 240_000);
});
