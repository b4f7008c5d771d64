import net from 'node:net';
import { STAGE_PROGRESS, type Stage } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { sleep } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';

describe('progress while a generation runs', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'progress', env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('polled while running, progress rises and stage moves through the pipeline', async () => {
    // slow upstream answer, then a slowly streamed download: time enough to watch each stage
    upstream.enqueue({ kind: 'ok', delayMs: 700, file: { kind: 'slow', chunkDelayMs: 200 } });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'slow one' });
    const seen: { status: string; stage: string; progress: number }[] = [];
    for (;;) {
      const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
      seen.push({ status: g.status, stage: g.stage, progress: g.progress });
      if (g.status === 'completed' || g.status === 'failed') break;
      await sleep(40);
    }
    const progress = seen.map((s) => s.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress[0]).toBeLessThanOrEqual(10);
    expect(progress.at(-1)).toBe(100);
    const stages = [...new Set(seen.map((s) => s.stage))];
    expect(stages).toEqual(expect.arrayContaining(['generating', 'downloading', 'done']));
    expect(stages.indexOf('generating')).toBeLessThan(stages.indexOf('downloading'));
    // every reading's progress is its stage's; the stages a poll is sure to see (the slow upstream,
    // the slow download, the end) give three values, and processing and storing may pass between polls
    expect(seen.map((s) => s.progress)).toEqual(seen.map((s) => STAGE_PROGRESS[s.stage as Stage]));
    expect(new Set(progress).size).toBeGreaterThanOrEqual(3);
    expect(seen.some((s) => s.status === 'active')).toBe(true);
  });

  it('the BullMQ job carries the same progress and a log line per stage (what Bull Board shows)', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'logged' }, { Prefer: 'wait=20' });
    const job = await stack.api.queues.generate.getJob(res.body.id);
    expect(job?.progress).toBe(100);
    const { logs } = await stack.api.queues.generate.getJobLogs(res.body.id);
    const stages = logs.map((l) => /stage=(\w+)/.exec(l)?.[1]).filter(Boolean);
    expect(stages).toEqual(['generating', 'downloading', 'processing', 'storing', 'done']);
  });

  it('GET /events streams each state change until the generation ends', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 300 });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'streamed' });
    const res = await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text(); // the stream ends when the generation does
    const events = text
      .split('\n\n')
      .filter((b) => b.includes('data: '))
      .map((b) => ({ type: /event: (.+)/.exec(b)?.[1], data: JSON.parse(/data: (.+)/.exec(b)?.[1] ?? '{}') }));
    expect(events[0]?.type).toBe('generation.snapshot');
    expect(events.at(-1)).toMatchObject({ type: 'generation.completed', data: { status: 'completed', progress: 100 } });
    expect(events.map((e) => e.type)).toContain('generation.progress');
    const progress = events.map((e) => e.data.progress as number);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));

    // opened after the end: the one event is that end, named as such (a client closing on it does)
    const late = await (await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`)).text();
    expect([...late.matchAll(/event: (.+)/g)].map((m) => m[1])).toEqual(['generation.completed']);
    // the end has its own id, and a client reconnecting with it (EventSource does, whenever a stream closes) is told to stop
    expect([...text.matchAll(/^id: (.+)$/gm)].map((m) => m[1]).at(-1)).toBe('end');
    expect([...late.matchAll(/^id: (.+)$/gm)].map((m) => m[1])).toEqual(['end']);
    const again = await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`, { headers: { 'Last-Event-ID': 'end' } });
    expect(again.status).toBe(204);
    expect(await again.text()).toBe('');
    // any other id is a stream as before
    const other = await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`, { headers: { 'Last-Event-ID': '3' } });
    expect(other.status).toBe(200);
    expect(await other.text()).toMatch(/event: generation\.completed/);
  });

  it('a reconnect goes on from the id it saw, never repeats an event, and HEAD answers the headers and ends', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 3000 });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'resumed' });
    const url = new URL(`${stack.baseUrl}/v1/generations/${created.body.id}/events`);
    const read = async (headers: Record<string, string>) => {
      const text = await (await fetch(url, { headers })).text();
      return text
        .split('\n\n')
        .filter((b) => b.includes('data: '))
        .map((b) => ({ id: /^id: (.+)$/m.exec(b)?.[1], type: /event: (.+)/.exec(b)?.[1], data: /data: (.+)/.exec(b)?.[1] }));
    };
    // HEAD while it runs, then another request on the same connection (before: the HEAD held it
    // until the generation or batch ended, with a subscription, and the second was never answered)
    const headThenHealth = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(url.port), url.hostname);
        let got = '';
        const timer = setTimeout(() => (socket.destroy(), resolve(got)), 2500);
        socket.on('data', (d) => {
          got += d.toString('latin1');
          if (/HTTP\/1\.1 200[\s\S]*HTTP\/1\.1 200[\s\S]*ok/.test(got)) {
            clearTimeout(timer);
            socket.destroy();
            resolve(got);
          }
        });
        socket.on('error', reject);
        socket.write(`HEAD ${path} HTTP/1.1\r\nHost: ${url.host}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      });
    upstream.enqueue({ kind: 'ok', delayMs: 3000 });
    const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'a batch under way' }] });
    for (const path of [url.pathname, `/v1/batches/${batch.body.id}/events`]) {
      const answers = await headThenHealth(path);
      expect([path, answers.match(/HTTP\/1\.1 \d+/g)]).toEqual([path, ['HTTP/1.1 200', 'HTTP/1.1 200']]);
      expect(answers).toMatch(/content-type: text\/event-stream/i);
    }
    // a client that saw id 7 reconnects: what follows is numbered from 8 (before: from 1 again)
    const events = await read({ 'Last-Event-ID': '7' });
    expect(events[0]?.id).toBe('8');
    const ids = events.map((e) => e.id).filter((id) => id !== 'end').map(Number);
    expect(ids).toEqual(ids.map((_, i) => 8 + i));
    // no event is told twice in a row
    for (let i = 1; i < events.length; i++) expect(`${events[i]!.type} ${events[i]!.data}`).not.toBe(`${events[i - 1]!.type} ${events[i - 1]!.data}`);
  });

  it("an end found by a re-read after a reconnect is told as the end's own event", async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 10_000 });
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'ended while the subscriber was away' });
    const res = await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}/events`);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    // the subscriber hears nothing for a while (as while it reconnects): the cancel's message waits
    const subscriber = stack.api.subscriber;
    subscriber.stream.pause();
    try {
      expect((await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}`, { method: 'DELETE' })).status).toBe(200);
      // back, it re-reads every stream's record (EventHub's resync), and finds the end there
      subscriber.emit('ready');
      while (!/id: end\n[^]*\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    } finally {
      subscriber.stream.resume();
    }
    await reader.cancel();
    const last = text.trim().split('\n\n').at(-1)!;
    // before: 'event: generation.snapshot' with the end's id, so a client waiting for the end event never heard it
    expect(last).toMatch(/^id: end\nevent: generation\.cancelled\ndata: .*"status":"cancelled"/);
  });
});

describe('submission rate limit per tenant', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'ratelimit', worker: false, env: { RATE_LIMIT_PER_MINUTE: '3', API_KEYS: 'a:key-a,b:key-b' } });
  });
  afterAll(() => stack.close());

  it('answers 429 with Retry-After past the limit, per tenant', async () => {
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let i = 0; i < 5; i++) {
      last = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `n${i}` }, { Authorization: 'Bearer key-a' });
      statuses.push(last.status);
    }
    // unless a minute boundary fell inside the loop, exactly 3 got through
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThanOrEqual(3);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
    expect(last?.headers.get('content-type')).toMatch(/problem\+json/);
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'other tenant' }, { Authorization: 'Bearer key-b' })).status).toBe(202);
  });
});
