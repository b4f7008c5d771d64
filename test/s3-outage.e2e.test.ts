import { FakeUpstream } from './support/fake-upstream';
import { eventually, sleep } from './support/net';
import { startS3Server, useS3Credentials, type S3Server } from './support/s3';
import { postJson, startStack, type Stack } from './support/stack';

/**
 * The object store goes away mid-load, for longer than the attempts would last, and comes back:
 * runs that cannot store wait for it (`storage_failed`) from their checkpoint (the paid-for bytes
 * spooled in Redis, or the stored original) without spending an attempt, so every generation
 * completes and no upstream call is made twice.
 */

const N = 40;

describe('STORAGE=s3: the object store stops mid-load', () => {
  let s3: S3Server;
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    useS3Credentials();
    s3 = await startS3Server();
    upstream = await FakeUpstream.start();
    upstream.defaultFile = { kind: 'image', width: 320, height: 240 };
    stack = await startStack({
      name: 's3-outage',
      env: {
        ...s3.env(),
        GENERATOR: 'aistudios',
        GENERATOR_URL: upstream.generateUrl,
        // an outage of seconds outlasts two attempts many times over: waiting spends none
        GENERATOR_MAX_ATTEMPTS: '2',
        GENERATOR_BACKOFF_MS: '200',
        GENERATOR_BACKOFF_MAX_MS: '1000',
        THUMBNAIL_SIZES: '128,64',
        RATE_LIMIT_PER_MINUTE: '100000',
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await s3?.destroy();
  });

  it('runs wait for the store from their checkpoint without spending attempts; all complete once it is back, each upstream call made once', async () => {
    const ids: string[] = [];
    // a steady trickle, so generations are at every stage when the store goes
    const submitting = (async () => {
      for (let i = 0; i < N; i++) {
        const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: `outage ${i}`, size: 'SQUARE' });
        expect(res.status).toBe(202);
        ids.push(res.body.id);
        await sleep(60);
      }
    })();
    const records = () => Promise.all(ids.map((id) => stack.api.store.get(id)));

    await eventually(async () => ((await records()).filter((r) => r?.status === 'completed').length >= 5 ? true : undefined), 30_000);
    await s3.stop();
    const stoppedMs = Date.now();
    const stoppedAt = (await records()).filter((r) => r?.status === 'completed').length;
    // attempts now fail on storing, and wait for their retry
    const failedWhileAway = await eventually(async () => {
      const waiting = (await records()).filter((r) => r?.status === 'queued' && r.error?.code === 'storage_failed');
      return waiting.length >= 3 ? waiting.map((r) => r!.id) : undefined;
    }, 30_000);
    await submitting;
    // long enough for two attempts' backoff (200 ms, then 400) several times over
    await sleep(Math.max(0, stoppedMs + 5000 - Date.now()));
    expect((await records()).filter((r) => r?.status === 'completed').length).toBeLessThan(N);
    expect((await records()).filter((r) => r?.status === 'failed')).toEqual([]);
    await s3.start();

    const final = await eventually(async () => {
      const all = await records();
      return all.every((r) => r?.status === 'completed') ? all : undefined;
    }, 60_000);
    process.stdout.write(`[s3-outage] ${stoppedAt} completed before the stop, ${failedWhileAway.length}+ waited on storage_failed, attempts up to ${Math.max(...final.map((r) => r!.attempts))}\n`);
    // no attempt was spent on the store: each generation ran its upstream call once, as attempt 1
    expect(final.map((r) => r!.attempts)).toEqual(final.map(() => 1));

    // each generation paid the upstream once and downloaded its image once
    expect(upstream.calls).toHaveLength(N);
    expect(upstream.fetches).toHaveLength(N);
    expect(upstream.fetches.every((f) => f.status === 200)).toBe(true);
    // waited, visibly: each wait logged with its reason
    for (const id of failedWhileAway) {
      const { logs } = await stack.api.queues.generate.getJobLogs(id);
      expect(logs.some((l) => /attempt 1 waits for storage \(storage_failed: /.test(l))).toBe(true);
    }
    // no spooled bytes left behind
    for (const id of ids) expect(await stack.redis.exists(stack.api.keys.spool(id))).toBe(0);
    // every generation's files, and nothing else, in the bucket
    const expected = final.flatMap((r) => [r!.result!.image.key, ...r!.result!.thumbnails.map((t) => t.key)]).sort();
    expect(expected).toHaveLength(N * 3);
    expect(await s3.keys()).toEqual(expected);
    for (const r of final.slice(-3)) {
      const res = await fetch(`${stack.baseUrl}/files/${r!.result!.image.key}`);
      expect([res.status, res.headers.get('content-type'), (await res.arrayBuffer()).byteLength]).toEqual([200, 'image/png', r!.result!.image.bytes]);
    }
  });
});
