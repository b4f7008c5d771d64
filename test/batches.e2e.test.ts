import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { batchResultLineSchema, ERROR_CODES, GenerationFailure, newFileToken, newId, retentionSeconds, type GeneratorProvider } from '@imagegen/shared';
import { eventually, sleep } from './support/net';
import { openMaintenance, type Maintenance } from './support/maintenance';
import { keysUnder } from './support/redis';
import { getJson, postJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/** Bytes at once; a topic starting with "fail" is refused for good, one starting with "slow" takes a while, "after <ms>" that long. */
async function instantProvider(): Promise<GeneratorProvider> {
  const png = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#3366aa' } }).png().toBuffer();
  return {
    name: 'builtin',
    async generate(request, signal) {
      if (request.topic.startsWith('fail')) throw new GenerationFailure(ERROR_CODES.rejected, 'refused', false);
      if (request.topic.startsWith('slow')) await sleep(200);
      if (request.topic.startsWith('after ')) await sleep(Number(request.topic.split(' ')[1]));
      void signal;
      return { kind: 'bytes', data: png, contentType: 'image/png' };
    },
  };
}

async function post(url: string, body: string, contentType: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': contentType, ...headers }, body });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
}

async function ndjsonLines(url: string): Promise<any[]> {
  const res = await fetch(url);
  expect(res.headers.get('content-type')).toMatch(/application\/x-ndjson/);
  return (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
}

/** Entries of a zip (stored entries), read from its central directory. */
function zipEntries(buf: Buffer): { name: string; size: number; data: Buffer }[] {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let count = buf.readUInt16LE(eocd + 10);
  let offset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || offset === 0xffffffff) {
    const loc = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x06, 0x06]));
    count = Number(buf.readBigUInt64LE(loc + 32));
    offset = Number(buf.readBigUInt64LE(loc + 48));
  }
  const out: { name: string; size: number; data: Buffer }[] = [];
  for (let i = 0; i < count; i++) {
    const nameLen = buf.readUInt16LE(offset + 28);
    const extraLen = buf.readUInt16LE(offset + 30);
    const commentLen = buf.readUInt16LE(offset + 32);
    const size = buf.readUInt32LE(offset + 24);
    const local = buf.readUInt32LE(offset + 42);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    out.push({ name: buf.toString('utf8', offset + 46, offset + 46 + nameLen), size, data: buf.subarray(start, start + size) });
    offset += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

describe('batches', () => {
  let stack: Stack;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack({ name: 'batches', worker: false, env: { RATE_LIMIT_PER_MINUTE: '100000', GENERATOR_MAX_ATTEMPTS: '1', BATCH_MAX_BODY_BYTES: '1048576', WEBHOOK_ALLOW_PRIVATE: 'true' } });
    await stack.startWorker({ WORKER_CONCURRENCY: '32', BATCH_FEED_INTERVAL_MS: '50' }, { provider: await instantProvider() });
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  it('an item of a batch still being written cannot be cancelled until the batch is confirmed, so the batch always completes', async () => {
    const batches = stack.api.batches;
    const id = newId('batch');
    const base = { id, tenant: 'default', status: 'in_progress' as const, total: 1, queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0, metadata: null };
    expect((await batches.begin(base, 600)).outcome).toBe('created');
    const item = { id: newId('gen'), fileToken: newFileToken(), request: { topic: 'written, not yet confirmed', style: 'PHOTOGRAPHIC' as const, size: 'LANDSCAPE' as const }, metadata: null, index: 0 };
    expect(await batches.addItems({ id, tenant: 'default' }, [item], 600)).toBe(true);
    // listed already, so a client can try
    const early = await fetch(`${stack.baseUrl}/v1/generations/${item.id}`, { method: 'DELETE' });
    // before: 200, and with its only item ended before the confirm, the batch stayed in_progress for good
    expect([early.status, early.headers.get('retry-after')]).toEqual([409, '1']);
    expect(await batches.confirm({ id, tenant: 'default' })).toBe(true);
    const later = await fetch(`${stack.baseUrl}/v1/generations/${item.id}`, { method: 'DELETE' });
    expect(later.status).toBe(200);
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body;
      return b.status === 'completed' ? b : undefined;
    });
    expect(done.counts).toMatchObject({ cancelled: 1 });
  });

  const formats: [string, string, (topics: string[]) => string][] = [
    ['application/json', 'JSON', (t) => JSON.stringify({ items: t.map((topic) => ({ topic, metadata: { t: topic } })), defaults: { size: 'SQUARE' } })],
    ['application/x-ndjson', 'NDJSON', (t) => t.map((topic) => JSON.stringify({ topic, size: 'SQUARE' })).join('\n') + '\n'],
    ['text/csv', 'CSV', (t) => 'topic,style,size\n' + t.map((topic) => `"${topic.replace(/"/g, '""')}",VECTOR_IMAGE,SQUARE`).join('\n')],
  ];

  it.each(formats)('a 1,000-item batch as %s completes with its counts, results in order and an archive that matches them', async (type, _name, render) => {
    const topics = Array.from({ length: 1000 }, (_, i) => `item ${i}, "quoted"\nline two`);
    const accepted = await post(`${stack.baseUrl}/v1/batches`, render(topics), type);
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'in_progress', total: 1000, counts: { queued: 1000, active: 0, completed: 0, failed: 0, cancelled: 0 } });
    const id = accepted.body.id as string;
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body;
      return b.status === 'completed' ? b : undefined;
    }, 90_000, 200);
    expect(done.counts).toEqual({ queued: 0, active: 0, completed: 1000, failed: 0, cancelled: 0 });
    expect(done.progress).toBe(100);

    const lines = await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`);
    expect(lines.map((l) => l.index)).toEqual(topics.map((_, i) => i));
    expect(lines.every((l) => l.status === 'completed' && l.result.image.url)).toBe(true);
    // each item is an ordinary generation of this batch, with its own request
    const item = (await getJson(`${stack.baseUrl}/v1/generations/${lines[7].id}`)).body;
    expect(item).toMatchObject({ batchId: id, batchIndex: 7, request: { topic: topics[7], size: 'SQUARE' } });

    // HEAD says what a GET would answer, without making it
    for (const what of ['archive', 'results']) {
      const head = await fetch(`${stack.baseUrl}/v1/batches/${id}/${what}`, { method: 'HEAD' });
      expect([head.status, head.headers.get('content-type')]).toEqual([200, what === 'archive' ? 'application/zip' : 'application/x-ndjson']);
    }
    const zip = Buffer.from(await (await fetch(`${stack.baseUrl}/v1/batches/${id}/archive`)).arrayBuffer());
    const entries = zipEntries(zip);
    const images = entries.filter((e) => e.name !== 'results.jsonl');
    expect(images.map((e) => e.name)).toEqual(lines.map((l) => `${String(l.index).padStart(3, '0')}-${l.id}.png`));
    expect(entries[0]?.name).toBe('results.jsonl');
    expect(entries[0]?.data.toString().trim().split('\n').map((l) => JSON.parse(l))).toEqual(lines);
  });

  it('an archive taken while its batch runs agrees with itself: each image its results call completed, and no other', async () => {
    const accepted = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'first' }, { topic: 'second' }, { topic: 'after 3000' }] }), 'application/json');
    const id = accepted.body.id as string;
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.counts.completed === 2 ? true : undefined));
    const first = (await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`))[0];
    // an entry large enough that the archive waits on the client while the last item completes
    await writeFile(stack.api.storage.localPath?.((await stack.api.store.get(first.id))!.result!.image.key) as string, Buffer.alloc(32 * 1024 * 1024, 1));
    const res = await fetch(`${stack.baseUrl}/v1/batches/${id}/archive`);
    const reader = res.body!.getReader();
    const chunks: Uint8Array[] = [(await reader.read()).value!];
    expect((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.status).toBe('in_progress');
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.status === 'completed' ? true : undefined), 10_000);
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    const entries = zipEntries(Buffer.concat(chunks));
    const results = entries.find((e) => e.name === 'results.jsonl')!.data.toString().trim().split('\n').map((l) => JSON.parse(l));
    expect(results.map((l) => l.status === 'completed')).toEqual([true, true, false]);
    // before: the results were written last, calling the third completed, with no image for it
    expect(entries.filter((e) => e.name !== 'results.jsonl').map((e) => e.name)).toEqual(results.filter((l) => l.status === 'completed').map((l) => `${l.index}-${l.id}.png`));
  });

  it('an archive download cut off by the client leaves no file open', async () => {
    const accepted = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'big one' }, { topic: 'small one' }] }), 'application/json');
    const id = accepted.body.id as string;
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.status === 'completed' ? true : undefined));
    const first = (await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`))[0];
    const record = await stack.api.store.get(first.id);
    // the first entry large enough that the archive is still reading it when the client leaves
    const file = stack.api.storage.localPath?.(record!.result!.image.key) as string;
    await writeFile(file, Buffer.alloc(32 * 1024 * 1024, 1));
    const target = (fd: string) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ''; // closed meanwhile
      }
    };
    const openUnderData = async () => (await readdir('/proc/self/fd').catch(() => [])).filter((fd) => target(fd).startsWith(stack.dataDir)).length;
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const res = await fetch(`${stack.baseUrl}/v1/batches/${id}/archive`, { signal: controller.signal });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.cancel().catch(() => undefined);
    }
    const left = await eventually(async () => ((await openUnderData()) === 0 ? 0 : undefined), 3000).catch(openUnderData);
    expect(left).toBe(0);
  });

  it('an original gone from storage cuts the archive short, and the API goes on', async () => {
    const accepted = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'kept' }, { topic: 'lost file' }] }), 'application/json');
    const id = accepted.body.id as string;
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.status === 'completed' ? true : undefined));
    const lost = (await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`))[1];
    await rm(stack.api.storage.localPath?.((await stack.api.store.get(lost.id))!.result!.image.key) as string);
    const res = await fetch(`${stack.baseUrl}/v1/batches/${id}/archive`);
    expect(res.status).toBe(200);
    // cut, not ended: a client cannot take it for a whole archive
    await expect(res.arrayBuffer()).rejects.toThrow();
    // before: the file's read error went unhandled and ended the API process
    expect((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);
  });

  it('rejects a batch with 3 bad items among 500, naming exactly those, and enqueues nothing', async () => {
    const items: unknown[] = Array.from({ length: 500 }, (_, i) => ({ topic: `ok ${i}` }));
    items[3] = { topic: 'x', style: 'OIL' };
    items[250] = { topic: '' };
    items[499] = { topic: 'y', colour: 'red' };
    const res = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items }), 'application/json');
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect([...new Set(res.body.errors.map((e: { path: string }) => e.path.split('.')[0]))]).toEqual(['3', '250', '499']);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(['3.style', '250.topic', '499.colour']);
    expect(await stack.api.queues.generate.count()).toBe(0);
    expect((await getJson(`${stack.baseUrl}/v1/batches`)).body.data.every((b: { total: number }) => b.total !== 500)).toBe(true);
  });

  it('names bad NDJSON lines and CSV headers, refuses other types and oversized bodies', async () => {
    const nd = await post(`${stack.baseUrl}/v1/batches`, '{"topic":"a"}\nnot json\n{"topic":"b","size":"HUGE"}\n', 'application/x-ndjson');
    expect(nd.status).toBe(400);
    expect(nd.body.errors.map((e: { path: string }) => e.path)).toEqual(['1', '2.size']);
    // listed in item order, an unreadable line among the others
    const mixed = await post(`${stack.baseUrl}/v1/batches`, '{"topic":"a","size":"HUGE"}\nnot json\n{"style":"NOPE"}\n', 'application/x-ndjson');
    expect(mixed.body.errors.map((e: { path: string }) => e.path)).toEqual(['0.size', '1', '2.topic', '2.style']);
    const csv = await post(`${stack.baseUrl}/v1/batches`, 'prompt,style\nx,PHOTOGRAPHIC\n', 'text/csv');
    expect(csv.status).toBe(400);
    expect((await post(`${stack.baseUrl}/v1/batches`, 'x', 'text/plain')).status).toBe(415);
    // no body at all (nor a type): a missing body, not a wrong type
    const none = await fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST' });
    expect(none.status).toBe(400);
    expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await none.json()) as { errors: { path: string }[] }).errors).toEqual([{ path: '(body)', message: 'is required' }]);
    const empty = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [] }), 'application/json');
    expect(empty.status).toBe(400);
    const huge = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ topic: `a rather long topic ${i}`.padEnd(60, '.') })) }), 'application/json');
    expect(huge.status).toBe(413);
    expect(huge.type).toMatch(/application\/problem\+json/);
  });

  it('a JSON batch cut off mid-upload, malformed at its end or over the limit while streaming leaves nothing behind', async () => {
    const batchKeys = async () => (await keysUnder(stack.redis, stack.prefix)).filter((k) => /:batch:|:idem:/.test(k)).sort();
    const before = await batchKeys();
    const body = JSON.stringify({ items: Array.from({ length: 5000 }, (_, i) => ({ topic: `cut off ${i}` })) });
    const port = Number(new URL(stack.baseUrl).port);
    await new Promise<void>((resolve) => {
      const req = http.request({ port, agent: false, method: 'POST', path: '/v1/batches', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'idempotency-key': 'cut-off' } });
      req.on('error', () => resolve());
      req.write(body.slice(0, body.length / 2), () => setTimeout(() => req.destroy(), 200));
    });
    const malformed = await post(`${stack.baseUrl}/v1/batches`, `${body.slice(0, -2)}]`, 'application/json', { 'Idempotency-Key': 'malformed' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.detail).toMatch(/not valid JSON/);
    const streamed = await fetch(`${stack.baseUrl}/v1/batches`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'too-big' },
      body: new Blob([JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ topic: `a rather long topic ${i}`.padEnd(60, '.') })) })]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await batchKeys()).toEqual(before);
    // and the API goes on answering
    expect((await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'after' }] }), 'application/json')).status).toBe(202);
  });

  it('reports a failing item in counts and results', async () => {
    const items = [{ topic: 'fine 0' }, { topic: 'fail here' }, { topic: 'fine 2' }];
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items }), 'application/json');
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body;
      return b.status === 'completed' ? b : undefined;
    });
    expect(done.counts).toEqual({ queued: 0, active: 0, completed: 2, failed: 1, cancelled: 0 });
    const lines = await ndjsonLines(`${stack.baseUrl}/v1/batches/${body.id}/results`);
    expect(lines.map((l) => l.status)).toEqual(['completed', 'failed', 'completed']);
    expect(lines[1].error).toMatchObject({ code: ERROR_CODES.rejected });
    // each line as the OpenAPI document's BatchResultLine describes it, completed and failed alike
    expect(lines.map((l) => batchResultLineSchema.strict().safeParse(l).error?.message ?? 'ok')).toEqual(['ok', 'ok', 'ok']);

    // an operator's Retry on the dashboard runs the job again: it finishes at once, saying why, and the item stays failed
    const job = await stack.api.queues.generate.getJob(lines[1].id);
    expect(await job!.getState()).toBe('failed');
    await job!.retry('failed');
    const rerun = await eventually(async () => ((await job!.getState()) === 'completed' ? true : undefined));
    expect(rerun).toBe(true);
    const { logs } = await stack.api.queues.generate.getJobLogs(lines[1].id);
    expect(logs.at(-1)).toMatch(new RegExp(`nothing to run: generation ${lines[1].id} is already failed`));
    expect((await getJson(`${stack.baseUrl}/v1/generations/${lines[1].id}`)).body).toMatchObject({ status: 'failed', error: { code: ERROR_CODES.rejected } });
    expect((await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body.counts).toEqual(done.counts);
  });

  it('cancelling mid-batch leaves finished items intact and the rest cancelled', async () => {
    const items = Array.from({ length: 600 }, (_, i) => ({ topic: `slow ${i}` }));
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items }), 'application/json');
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body.counts.completed >= 20 ? true : undefined));
    const cancelled = await fetch(`${stack.baseUrl}/v1/batches/${body.id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body;
      return b.status === 'completed' ? b : undefined;
    });
    const lines = await ndjsonLines(`${stack.baseUrl}/v1/batches/${body.id}/results`);
    const completed = lines.filter((l) => l.status === 'completed');
    expect(completed.length).toBe(done.counts.completed);
    expect(completed.length).toBeGreaterThanOrEqual(20);
    expect(completed.length).toBeLessThan(600);
    expect(lines.filter((l) => l.status === 'cancelled').length).toBe(600 - completed.length);
    expect(done.counts).toMatchObject({ queued: 0, active: 0, failed: 0, cancelled: 600 - completed.length });
    for (const l of completed.slice(0, 3)) expect((await fetch(l.result.image.url)).status).toBe(200);
    // once every item has finished there is nothing left to cancel, as for a finished generation
    const again = await fetch(`${stack.baseUrl}/v1/batches/${body.id}`, { method: 'DELETE' });
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toMatch(/problem\+json/);
    expect((await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body.counts).toEqual(done.counts);
  });

  it('streams count changes and item completions as events until the batch ends', async () => {
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'a' }, { topic: 'b' }, { topic: 'fail c' }] }), 'application/json');
    const res = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/events`);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const text = await res.text();
    const events = [...text.matchAll(/event: (\S+)\ndata: (.*)\n/g)].map((m) => ({ type: m[1], data: JSON.parse(m[2]!) }));
    expect(events[events.length - 1]).toMatchObject({ type: 'batch.completed', data: { counts: { completed: 2, failed: 1 } } });
    // items that finished after the stream began are each announced
    const items = events.filter((e) => e.type === 'item');
    expect(new Set(items.map((e) => e.data.index)).size).toBe(items.length);
  });

  it('an events stream that reconnects with Last-Event-ID is told every item that ended while it was away, none twice', async () => {
    type Sse = { id: string; type: string; data: any };
    /** Events of a stream until `enough` says so or the stream ends; then the connection is dropped. */
    const listen = async (id: string, lastEventId: string | undefined, enough: (events: Sse[]) => boolean) => {
      const ac = new AbortController();
      const res = await fetch(`${stack.baseUrl}/v1/batches/${id}/events`, { headers: lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId }, signal: ac.signal });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const events: Sse[] = [];
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const field = (name: string) => [...block.matchAll(/^(\w+): (.*)$/gm)].find((m) => m[1] === name)?.[2];
          if (field('event')) events.push({ id: field('id') as string, type: field('event') as string, data: JSON.parse(field('data') as string) });
        }
        if (enough(events)) break;
      }
      ac.abort();
      return events;
    };
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: Array.from({ length: 12 }, (_, i) => ({ topic: `after ${100 * (i + 1)} ms` })) }), 'application/json');
    // from the first item on ('0-0'), and away after the first that ends
    const before = await listen(body.id, '0-0', (events) => events.some((e) => e.type === 'item'));
    const firstItems = before.filter((e) => e.type === 'item');
    expect(firstItems.length).toBeGreaterThanOrEqual(1);
    expect(before.every((e) => /^\d+-\d+$/.test(e.id))).toBe(true);
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body.status === 'completed' ? true : undefined), 30_000);
    const after = await listen(body.id, before[before.length - 1]!.id, () => false);
    expect(after[after.length - 1]).toMatchObject({ type: 'batch.completed', data: { counts: { completed: 12 } } });
    const laterItems = after.filter((e) => e.type === 'item');
    expect(laterItems.length).toBeGreaterThanOrEqual(1);
    // between them, each item once, with its id and status
    const told = [...firstItems, ...laterItems].map((e) => e.data.index).sort((a, b) => a - b);
    expect(told).toEqual(Array.from({ length: 12 }, (_, i) => i));
    for (const e of [...firstItems, ...laterItems]) expect(e.data).toEqual({ index: e.data.index, id: expect.stringMatching(/^gen_/), status: 'completed' });
    // without Last-Event-ID a stream starts from now: an ended batch is told as its end
    const fresh = await listen(body.id, undefined, () => false);
    expect(fresh.map((e) => e.type)).toEqual(['batch.completed']);
    // an id it did not give out counts as none
    expect(await listen(body.id, '57', () => false)).toEqual(fresh);
    // the end has its own id, and a client reconnecting with it (EventSource does, whenever a stream closes) is told to stop
    expect(after[after.length - 1]!.id).toBe('end');
    expect(fresh[0]!.id).toBe('end');
    const again = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/events`, { headers: { 'Last-Event-ID': 'end' } });
    expect(again.status).toBe(204);
    expect(await again.text()).toBe('');
  });

  it('an events stream ends when its batch is gone, rather than beating on', async () => {
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: Array.from({ length: 40 }, (_, i) => ({ topic: `slow ${i}` })) }), 'application/json');
    const res = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/events`);
    const reader = res.body!.getReader();
    await reader.read();
    // its retention ended under it; the next change heard re-reads it
    await stack.redis.del(stack.api.keys.batch(body.id));
    await stack.redis.publish(stack.api.keys.batchChannel(body.id), JSON.stringify({ type: 'item', id: 'gen_x', index: 0, status: 'active', from: 'queued' }));
    const ended = await Promise.race([
      (async () => {
        for (;;) if ((await reader.read()).done) return true;
      })(),
      sleep(5000).then(() => false),
    ]);
    await reader.cancel().catch(() => undefined);
    expect(ended).toBe(true);
  });

  it('answers the same batch for a repeated Idempotency-Key and 409 for another body', async () => {
    const body = JSON.stringify({ items: [{ topic: 'once' }] });
    const first = await post(`${stack.baseUrl}/v1/batches`, body, 'application/json', { 'Idempotency-Key': 'k-1' });
    const again = await post(`${stack.baseUrl}/v1/batches`, body, 'application/json', { 'Idempotency-Key': 'k-1' });
    expect(again.body.id).toBe(first.body.id);
    const other = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'twice' }] }), 'application/json', { 'Idempotency-Key': 'k-1' });
    expect(other.status).toBe(409);
    const list = (await getJson(`${stack.baseUrl}/v1/batches?limit=2`)).body;
    expect(list.data[0].id).toBe(first.body.id);
    expect(list.hasMore).toBe(true);
  });

  it('a key that outlives its batch (a retention shorter than a day) starts a new batch, as it does for a generation', async () => {
    const body = JSON.stringify({ items: [{ topic: 'outlived' }] });
    const first = await post(`${stack.baseUrl}/v1/batches`, body, 'application/json', { 'Idempotency-Key': 'k-outlived' });
    expect(first.status).toBe(202);
    const id = first.body.id as string;
    await eventually(async () => ((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body.status === 'completed' ? true : undefined), 30_000, 100);
    // the retention sweep's removal of the batch; its key lives on
    const keys = stack.api.keys;
    await stack.redis.del(keys.batch(id), keys.batchItems(id), keys.batchFinished(id), keys.batchDeliveries(id));
    await stack.redis.zrem(keys.tenantBatches('default'), id);
    await stack.redis.zrem(keys.batchExpiry(), `${id}|default`);
    expect((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).status).toBe(404);
    // before: 409 "still being accepted" for as long as the key lived
    const again = await post(`${stack.baseUrl}/v1/batches`, body, 'application/json', { 'Idempotency-Key': 'k-outlived' });
    expect(again.status).toBe(202);
    expect(again.body.id).not.toBe(id);
    const repeat = await post(`${stack.baseUrl}/v1/batches`, body, 'application/json', { 'Idempotency-Key': 'k-outlived' });
    expect(repeat.body.id).toBe(again.body.id);
  });

  it('a repeat sent while the first is still being written is told to retry before it is charged any quota', async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => ({ topic: `written slowly ${i}` }));
    const body = JSON.stringify({ items });
    // read directly (one KEYS of a few, no scan of everything): the first is still writing meanwhile
    const counted = async () => {
      const out: Record<string, string | null> = {};
      for (const key of await stack.redis.keys(`${stack.prefix}:quota:*`)) out[key] = await stack.redis.get(key);
      return out;
    };
    const send = (key: string) => fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key }, body });
    const claimOf = (key: string) => stack.api.keys.idempotency('default', createHash('sha256').update(key).digest('hex'));
    // a charge raises a counter, or makes one; a quota window that ends meanwhile takes its counter
    // away (it expires with its minute), which charges nothing
    const uncharged = async (before: Record<string, string | null>) => {
      const after = await counted();
      expect(after).toEqual(Object.fromEntries(Object.keys(after).map((k) => [k, before[k]])));
    };
    const told409 = async (repeat: Response, before: Record<string, string | null>) => {
      expect([repeat.status, repeat.headers.get('retry-after')]).toEqual([409, '1']);
      await uncharged(before);
    };

    // a real race: the repeat lands while the first writes (409), or, on a busy machine, after it (the same batch)
    const first = send('while-written');
    await eventually(async () => ((await stack.redis.exists(claimOf('while-written'))) === 1 ? true : undefined), 10_000, 2);
    const beforeRace = await counted();
    const raced = await send('while-written');
    const accepted = (await (await first).json()) as { id: string };
    if (raced.status === 409) await told409(raced, beforeRace);
    else expect([raced.status, ((await raced.json()) as { id: string }).id]).toEqual([202, accepted.id]);

    // the same moment held still, whatever the machine's pace: a batch of this body begun under
    // another key by the product's own store, its items not written yet (a writer part-way)
    const bodyHash = (await stack.redis.get(claimOf('while-written')))?.split('|')[0];
    expect(bodyHash).toMatch(/\S/);
    const id = newId('batch');
    const claim = { key: claimOf('while-held'), value: `${bodyHash}|${id}`, ttlSeconds: 600 };
    const counts = { queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, released: 0 };
    const begun = await stack.api.batches.begin({ id, tenant: 'default', status: 'in_progress', total: items.length, ...counts, metadata: null }, 600, claim);
    expect(begun.outcome).toBe('created');
    const before = await counted();
    await told409(await send('while-held'), before);
    // the writer finishes: the repeat now gets that batch, charged nothing more
    for (let start = 0; start < items.length; start += 1000) {
      const chunk = items.slice(start, start + 1000).map((item, i) => ({ id: newId('gen'), fileToken: newFileToken(), request: { topic: item.topic, style: 'PHOTOGRAPHIC' as const, size: 'SQUARE' as const }, metadata: null, index: start + i }));
      expect(await stack.api.batches.addItems({ id, tenant: 'default' }, chunk, 600)).toBe(true);
    }
    expect(await stack.api.batches.confirm({ id, tenant: 'default' }, { ...claim, ttlSeconds: 3600 })).toBe(true);
    const again = await send('while-held');
    expect([again.status, ((await again.json()) as { id: string }).id]).toEqual([202, id]);
    await uncharged(before);
  });

  it('identical batches sent at once with one Idempotency-Key make one batch; those answered 409 meanwhile are told to retry, and then get it', async () => {
    const body = JSON.stringify({ items: Array.from({ length: 3000 }, (_, i) => ({ topic: `raced ${i}` })) });
    const send = () => fetch(`${stack.baseUrl}/v1/batches`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'race-b' }, body });
    const answers = await Promise.all(Array.from({ length: 6 }, send));
    const accepted = new Set<string>();
    let told = 0;
    for (const a of answers) {
      if (a.status === 409) {
        expect(a.headers.get('retry-after')).toBe('1');
        told++;
        // as a client does: again after Retry-After, for as long as the first is still being written
        let again = a;
        for (let tries = 0; again.status === 409 && tries < 30; tries++) {
          await sleep(Number(again.headers.get('retry-after')) * 1000);
          again = await send();
        }
        expect(again.status).toBe(202);
        accepted.add(((await again.json()) as { id: string }).id);
      } else {
        expect(a.status).toBe(202);
        accepted.add(((await a.json()) as { id: string }).id);
      }
    }
    expect(accepted.size).toBe(1);
    // (how many raced the first writer depends on timing; every one of them ends with the same batch)
    expect(told).toBeLessThan(6);
    // its 3,000 items would otherwise hold the worker for the tests after this one
    expect((await fetch(`${stack.baseUrl}/v1/batches/${[...accepted][0]}`, { method: 'DELETE' })).status).toBe(200);
  });

  it('sends each item’s outcome and batch.completed, once, to the batch’s webhook', async () => {
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
    const items = [{ topic: 'hook a' }, { topic: 'fail hook b' }, { topic: 'hook c' }];
    // metadata that a JSON decode/encode round trip in Lua would change ([] → {}, 17 digits → 14)
    const metadata = { run: 7, tags: [], ratio: 0.30000000000000004, big: 123456789012345, nested: { empty: [] } };
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items, webhook: { url: receiver.url('/batch') }, metadata }), 'application/json');
    const done = await eventually(async () => {
      const got = receiver.on('/batch').map((r) => JSON.parse(r.body));
      return got.some((e) => e.type === 'batch.completed') && got.length >= 4 ? got : undefined;
    });
    const completed = done.filter((e) => e.type === 'batch.completed');
    expect(completed).toHaveLength(1);
    expect(completed[0].data).toMatchObject({ id: body.id, object: 'batch', status: 'completed', total: 3, progress: 100, counts: { completed: 2, failed: 1, cancelled: 0, queued: 0, active: 0 } });
    // exactly as the GET returns it, metadata untouched
    expect(completed[0].data).toEqual((await getJson(`${stack.baseUrl}/v1/batches/${body.id}`)).body);
    expect(completed[0].data.metadata).toEqual(metadata);
    // every body verifies and is the envelope the OpenAPI document describes (batch.completed's data made by a script)
    const bodies = receiver.on('/batch');
    expect(bodies.map((r) => [r.verifiedWith, r.shapeError ?? 'ok'])).toEqual(bodies.map(() => [[0], 'ok']));
    // batch.completed is recorded after every item's event (webhook-ids follow the outbox order)
    const hooks = receiver.on('/batch');
    const entry = (r: { headers: Record<string, string> }) => {
      const id = String(r.headers['webhook-id']).slice('msg_'.length);
      return { ms: parseInt(id.slice(0, 9), 36), seq: parseInt(id.slice(9), 36) };
    };
    const before = (a: { ms: number; seq: number }, b: { ms: number; seq: number }) => a.ms < b.ms || (a.ms === b.ms && a.seq < b.seq);
    const batchHook = hooks.find((r) => JSON.parse(r.body).type === 'batch.completed')!;
    for (const item of hooks.filter((r) => r !== batchHook)) expect([entry(item), before(entry(item), entry(batchHook))]).toEqual([entry(item), true]);
    expect(done.filter((e) => e.type === 'generation.completed')).toHaveLength(2);
    expect(done.filter((e) => e.type === 'generation.failed')).toHaveLength(1);
    expect(done.every((e) => e.type === 'batch.completed' || e.data.batchId === body.id)).toBe(true);
  });

  it('sends again, in one call, every delivery of a batch and its items that an endpoint refused while it was down', async () => {
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
    // down for the first four (three items and the batch: 410 ends each at once), back after
    receiver.script('/recover', 410, 410, 410, 410, 200);
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'recover a' }, { topic: 'recover b' }, { topic: 'fail recover c' }], webhook: { url: receiver.url('/recover') } }), 'application/json');
    const refused = await eventually(async () => (receiver.on('/recover').length === 4 ? receiver.on('/recover') : undefined));
    const items = await ndjsonLines(`${stack.baseUrl}/v1/batches/${body.id}/results`);
    const logs = async () => [
      ...(await Promise.all(items.map(async (i) => (await getJson(`${stack.baseUrl}/v1/generations/${i.id}/deliveries`)).body.data))).flat(),
      ...(await getJson(`${stack.baseUrl}/v1/batches/${body.id}/deliveries`)).body.data,
    ];
    await eventually(async () => ((await logs()).filter((a: any) => a.state === 'failed').length === 4 ? true : undefined));

    // a state that cannot be asked for: 400, nothing sent
    const bad = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/deliveries/redeliver`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ states: ['delivered'] }) });
    expect([bad.status, bad.headers.get('content-type')]).toEqual([400, expect.stringMatching(/problem\+json/)]);
    const unknown = await fetch(`${stack.baseUrl}/v1/batches/batch_unknown/deliveries/redeliver`, { method: 'POST' });
    expect(unknown.status).toBe(404);

    // held in the queue for a moment, so the calls below all meet it running
    const batchId = body.id as string;
    await stack.api.queues.webhooks.pause();
    const redeliver = (ask?: unknown) => fetch(`${stack.baseUrl}/v1/batches/${batchId}/deliveries/redeliver`, { method: 'POST', ...(ask ? { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ask) } : {}) });
    let recovery: { id: string };
    try {
      // two calls at once (a client retrying one it thinks timed out): both get the one recovery
      const calls = await Promise.all([0, 1].map(() => redeliver()));
      expect(calls.map((c) => c.status)).toEqual([202, 202]);
      const [first, again] = (await Promise.all(calls.map((c) => c.json()))) as { id: string }[];
      recovery = first!;
      expect(recovery).toMatchObject({ id: expect.stringMatching(/^rcv_/), status: 'running', batchId, states: ['failed', 'exhausted'] });
      expect(again!.id).toBe(recovery.id);
      for (const c of calls) expect(c.headers.get('location')).toBe(`${stack.baseUrl}/v1/webhooks/recoveries/${recovery.id}`);
      // another scope while it runs: 409 naming it
      const other = await redeliver({ states: ['failed'] });
      expect([other.status, other.headers.get('location')]).toEqual([409, `${stack.baseUrl}/v1/webhooks/recoveries/${recovery.id}`]);
      const window = await postJson(`${stack.baseUrl}/v1/webhooks/recover`, { since: new Date(Date.now() - 60_000).toISOString() });
      expect([window.status, window.headers.get('location')]).toEqual([409, `${stack.baseUrl}/v1/webhooks/recoveries/${recovery.id}`]);
    } finally {
      await stack.api.queues.webhooks.resume();
    }
    const finished = async (id: string) =>
      eventually(async () => {
        const r = (await getJson(`${stack.baseUrl}/v1/webhooks/recoveries/${id}`)).body;
        return r.status === 'completed' ? r : undefined;
      });
    expect(await finished(recovery.id)).toMatchObject({ batchId, scanned: 4, redelivered: 4 });
    const all = await eventually(async () => (receiver.on('/recover').length === 8 ? receiver.on('/recover') : undefined));
    const resent = all.slice(4);
    // each one again under its own webhook-id, the same bytes, verified with the tenant's secret
    expect(new Set(resent.map((r) => r.headers['webhook-id']))).toEqual(new Set(refused.map((r) => r.headers['webhook-id'])));
    for (const r of resent) expect(r.body).toBe(refused.find((f) => f.headers['webhook-id'] === r.headers['webhook-id'])!.body);
    expect(resent.map((r) => r.verifiedWith)).toEqual([[0], [0], [0], [0]]);
    expect(resent.map((r) => r.payload.type).sort()).toEqual(['batch.completed', 'generation.completed', 'generation.completed', 'generation.failed']);
    await eventually(async () => ((await logs()).filter((a: any) => a.state === 'delivered').length === 4 ? true : undefined));

    // delivered now: nothing left to send
    const twice = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/deliveries/redeliver`, { method: 'POST' });
    expect(await finished(((await twice.json()) as { id: string }).id)).toMatchObject({ scanned: 0, redelivered: 0 });
    await sleep(300);
    expect(receiver.on('/recover')).toHaveLength(8);
  });

  it('lists the attempts of a batch’s own delivery and sends it again, verified, with the same webhook-id', async () => {
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
    // the endpoint is gone the first time (410 ends a delivery at once), back the next
    receiver.script('/batch-log', 410, 200);
    const webhook = { url: receiver.url('/batch-log'), events: ['batch.completed'] };
    const { body } = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'log a' }, { topic: 'log b' }], webhook }), 'application/json');
    const logOf = async () => (await getJson(`${stack.baseUrl}/v1/batches/${body.id}/deliveries`)).body;
    const refused = await eventually(async () => {
      const log = await logOf();
      return log.data.some((a: any) => a.state === 'failed') ? log : undefined;
    });
    expect(refused.object).toBe('list');
    expect(refused.data).toEqual([{ id: expect.stringMatching(/^dlv_/), event: 'batch.completed', webhookId: expect.stringMatching(/^msg_/), attempt: 1, at: expect.any(String), status: 410, error: 'answered 410', durationMs: expect.any(Number), state: 'failed' }]);
    const [first] = receiver.on('/batch-log');
    expect(first!.headers['webhook-id']).toBe(refused.data[0].webhookId);

    const again = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/deliveries/${refused.data[0].id}/redeliver`, { method: 'POST' });
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ id: refused.data[0].id, webhookId: refused.data[0].webhookId, event: 'batch.completed', state: 'pending' });
    const delivered = await eventually(async () => {
      const log = await logOf();
      return log.data.some((a: any) => a.state === 'delivered') ? log : undefined;
    });
    expect(delivered.data.map((a: any) => [a.webhookId, a.status, a.state])).toEqual([
      [refused.data[0].webhookId, 410, 'failed'],
      [refused.data[0].webhookId, 200, 'delivered'],
    ]);
    // the same event, the same bytes, verified with the tenant's secret
    const hooks = receiver.on('/batch-log');
    expect(hooks).toHaveLength(2);
    expect(hooks[1]!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(hooks[1]!.body).toBe(first!.body);
    expect(hooks.map((h) => h.verifiedWith)).toEqual([[0], [0]]);
    expect(hooks[1]!.payload).toMatchObject({ type: 'batch.completed', data: { id: body.id, status: 'completed' } });
    // an item's log holds its own deliveries only (none wanted here), the batch's stays with the batch
    const [item] = await ndjsonLines(`${stack.baseUrl}/v1/batches/${body.id}/results`);
    expect((await getJson(`${stack.baseUrl}/v1/generations/${item.id}/deliveries`)).body.data).toEqual([]);

    // unknown batch, unknown delivery: problem+json 404, nothing queued
    for (const [method, url] of [
      ['GET', `${stack.baseUrl}/v1/batches/batch_unknown/deliveries`],
      ['POST', `${stack.baseUrl}/v1/batches/batch_unknown/deliveries/${refused.data[0].id}/redeliver`],
      ['POST', `${stack.baseUrl}/v1/batches/${body.id}/deliveries/dlv_unknown/redeliver`],
    ] as const) {
      const res = await fetch(url, { method });
      expect([url, res.status, res.headers.get('content-type')]).toEqual([url, 404, expect.stringMatching(/application\/problem\+json/)]);
    }
    // another method on the route: 405 with Allow
    const put = await fetch(`${stack.baseUrl}/v1/batches/${body.id}/deliveries`, { method: 'PUT' });
    expect([put.status, put.headers.get('allow')]).toEqual([405, 'GET, HEAD, OPTIONS']);
    await sleep(300);
    expect(receiver.on('/batch-log')).toHaveLength(2);
  });
});

describe('batch retention', () => {
  let stack: Stack;
  let maintenance: Maintenance;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    // a retention of a few seconds, shorter than the batch runs
    stack = await startStack({ name: 'batch-retention', worker: false, env: { RECORD_RETENTION_HOURS: '0.001', GENERATOR_MAX_ATTEMPTS: '1', WEBHOOK_ALLOW_PRIVATE: 'true' } });
    await stack.startWorker({ MAINTENANCE_INTERVAL_MS: '3600000' }, { provider: await instantProvider() });
    maintenance = openMaintenance(stack.prefix);
  });
  afterAll(async () => {
    await maintenance?.close();
    await stack?.close();
    await receiver?.close();
  });

  it('an item that ended early is kept while its batch runs, its delivery log too, and goes with the batch once the retention after the batch ends', async () => {
    const webhook = { url: receiver.url('/held'), events: ['generation.completed'] };
    const accepted = await post(`${stack.baseUrl}/v1/batches`, JSON.stringify({ items: [{ topic: 'early' }, { topic: 'after 6000' }], webhook }), 'application/json');
    const id = accepted.body.id as string;
    const [early] = await eventually(async () => {
      const lines = await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`);
      return lines[0].status === 'completed' ? lines : undefined;
    });
    const image = early.result.image.url as string;
    const done = await eventually(async () => {
      const b = (await getJson(`${stack.baseUrl}/v1/batches/${id}`)).body;
      return b.status === 'completed' ? b : undefined;
    }, 20_000);
    // before: 404, the early item had expired (its record, and at the sweep its image)
    const kept = await getJson(`${stack.baseUrl}/v1/generations/${early.id}`);
    expect(kept.status).toBe(200);
    // its delivery, made when it ended, is still in its log (before: the log had expired, [])
    expect((await getJson(`${stack.baseUrl}/v1/generations/${early.id}/deliveries`)).body.data).toMatchObject([{ event: 'generation.completed', attempt: 1, state: 'delivered' }]);
    // it ended more than a retention before the batch did
    expect(Date.parse(done.completedAt) - Date.parse(kept.body.completedAt)).toBeGreaterThan(retentionSeconds(0.001) * 1000);
    expect((await maintenance.sweepOnce()).records).toBe(0);
    // its image is scheduled with it, moved on together (a sweep that knows nothing of holding,
    // during an upgrade, removes both at once rather than leave the image unowned)
    const token = new URL(image).pathname.split('/')[2]!;
    const [recordDue, imageDue] = await Promise.all([stack.redis.zscore(stack.api.keys.recordExpiry(), `${early.id}|default`), stack.redis.zscore(stack.api.keys.fileExpiry(), token)]);
    expect(Number(recordDue)).toBe(Date.parse(done.completedAt) + retentionSeconds(0.001) * 1000);
    expect(imageDue).toBe(recordDue);
    expect((await ndjsonLines(`${stack.baseUrl}/v1/batches/${id}/results`)).map((l) => l.status)).toEqual(['completed', 'completed']);
    expect((await fetch(image)).status).toBe(200);
    // once the retention has passed after the batch ended, one sweep takes the batch, both items and their files
    await sleep(Math.max(0, Date.parse(done.completedAt) + retentionSeconds(0.001) * 1000 + 200 - Date.now()));
    const swept = await maintenance.sweepOnce();
    // (records counts batches too)
    expect([swept.records, swept.files]).toEqual([3, 2]);
    expect((await getJson(`${stack.baseUrl}/v1/batches/${id}`)).status).toBe(404);
    expect((await keysUnder(stack.redis, stack.prefix)).filter((k) => k.includes(id) || k.includes(early.id))).toEqual([]);
    expect((await fetch(image)).status).toBe(404);
    expect((await readdir(path.join(stack.dataDir, 'files'))).filter((d) => !d.startsWith('.'))).toEqual([]);
  });
});
