import type { Readable } from 'node:stream';
import { FsStorage, type Storage } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { checkResultImages } from './support/images';
import { eventually } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';

/** Real files on disk, with a fault injected into the first `failures` writes matching a pattern. */
class FaultyStorage implements Storage {
  failed = 0;
  constructor(
    private readonly inner: Storage,
    private readonly pattern: RegExp,
    private failures: number,
  ) {}
  async put(key: string, data: Buffer) {
    if (this.pattern.test(key) && this.failures > 0) {
      this.failures--;
      this.failed++;
      // as a file system words it: naming the file, whose path holds the file token
      throw new Error(`ENOSPC: no space left on device, open '/data/files/${key}'`);
    }
    return this.inner.put(key, data);
  }
  read(key: string) {
    return this.inner.read(key);
  }
  /** The store is back: no more faults. */
  heal() {
    this.failures = 0;
  }
  stat(key: string) {
    return this.inner.stat(key);
  }
  createReadStream(key: string): Readable {
    return this.inner.createReadStream(key);
  }
  removePrefix(prefix: string) {
    return this.inner.removePrefix(prefix);
  }
  removeOthers(prefix: string, keep: ReadonlySet<string>) {
    return this.inner.removeOthers(prefix, keep);
  }
}

describe('checkpoints: a paid upstream result is never requested twice', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'checkpoint', worker: false, env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_BACKOFF_MS: '100' } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('a storage failure after the original is stored retries from that stage, not from the upstream', async () => {
    // one faulty key: each run fails on it once, until the faults run out
    const storage = new FaultyStorage(new FsStorage(stack.dataDir), /\/thumb-256-/, 2);
    await stack.startWorker({}, { storage });
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'checkpointed', size: 'SQUARE' }, { Prefer: 'wait=30' });
    // waiting for the store spends no attempt: the upstream was asked once
    expect(res.body).toMatchObject({ status: 'completed', attempts: 1 });
    expect(storage.failed).toBe(2);
    // one upstream call and one download for three runs
    expect(upstream.calls).toHaveLength(1);
    expect(upstream.fetches.map((f) => f.status)).toEqual([200]);
    const { logs } = await stack.api.queues.generate.getJobLogs(res.body.id);
    expect(logs.filter((l) => /attempt 1 waits for storage \(storage_failed: Could not store thumbnail 256/.test(l))).toHaveLength(2);
    expect(logs.filter((l) => /stage=generating/.test(l))).toHaveLength(3);
    expect(logs.filter((l) => /stage=downloading/.test(l))).toHaveLength(1);
    expect(await checkResultImages(res.body, 'SQUARE', { expectDimensions: false })).toEqual([]);
  });
});

describe('checkpoints: bytes returned by the upstream (b64_json) are never paid for twice', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    upstream.openAiAnswer = 'b64_json';
    stack = await startStack({
      name: 'spool',
      worker: false,
      env: { GENERATOR: 'openai', GENERATOR_API_KEY: 'sk-test', GENERATOR_URL: `${upstream.baseUrl}/v1/images/generations`, GENERATOR_BACKOFF_MS: '100' },
    });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('storing the original keeps failing: the bytes are spooled and the next attempt resumes from them', async () => {
    // three failures exhaust the in-place retries of attempt 1; attempt 2 stores from the spool
    const storage = new FaultyStorage(new FsStorage(stack.dataDir), /\/original-/, 3);
    const worker = await stack.startWorker({}, { storage });
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'paid once', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(res.body).toMatchObject({ status: 'completed', attempts: 1 });
    expect(storage.failed).toBe(3);
    expect(upstream.calls).toHaveLength(1);
    // the spool is gone once the original is stored
    expect(await stack.redis.exists(`${stack.prefix}:spool:${res.body.id}`)).toBe(0);
    expect(await checkResultImages(res.body, 'SQUARE', { expectDimensions: false })).toEqual([]);
    await worker.close();
  });

  it('a brief storage hiccup is absorbed within the attempt', async () => {
    const before = upstream.calls.length;
    const storage = new FaultyStorage(new FsStorage(stack.dataDir), /\/original-/, 1);
    await stack.startWorker({}, { storage });
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'hiccup' }, { Prefer: 'wait=30' });
    expect(storage.failed).toBe(1);
    expect(res.body).toMatchObject({ status: 'completed', attempts: 1 });
    expect(upstream.calls.length - before).toBe(1);
  });
});

describe('checkpoints: a store that stays away longer than the attempts last', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    // one attempt only: any storage failure that spent it would fail the generation
    stack = await startStack({ name: 'storage-wait', worker: false, env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_MAX_ATTEMPTS: '1', GENERATOR_BACKOFF_MS: '50', GENERATOR_BACKOFF_MAX_MS: '200' } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  const settled = (id: string) =>
    eventually(async () => {
      const g = await stack.api.store.get(id);
      return g && (g.status === 'completed' || g.status === 'failed') ? g : undefined;
    }, 30_000);

  it('is waited out without spending attempts, from the spooled bytes and from the stored original', async () => {
    // the original fails two runs' in-place tries (3 each), then a thumbnail fails once
    const thumbFaults = new FaultyStorage(new FsStorage(stack.dataDir), /\/thumb-256-/, 1);
    const originalFaults = new FaultyStorage(thumbFaults, /\/original-/, 6);
    const worker = await stack.startWorker({}, { storage: originalFaults });
    try {
      const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'outlasts the attempts', size: 'SQUARE' });
      const done = await settled(created.body.id);
      expect(done).toMatchObject({ status: 'completed', attempts: 1 });
      expect([originalFaults.failed, thumbFaults.failed]).toEqual([6, 1]);
      expect(upstream.calls).toHaveLength(1);
      expect(await stack.redis.exists(`${stack.prefix}:spool:${done.id}`)).toBe(0);
      const { logs } = await stack.api.queues.generate.getJobLogs(done.id);
      const waits = logs.filter((l) => /attempt 1 waits for storage/.test(l));
      expect(waits.map((l) => /Could not (store the original|store thumbnail 256)/.exec(l)?.[1])).toEqual(['store the original', 'store the original', 'store thumbnail 256']);
      expect(logs.some((l) => /attempt \d+ failed/.test(l))).toBe(false);
    } finally {
      await worker.close();
    }
  });

  it('shows the generation queued at stage storing while it waits, and completes once the store is back', async () => {
    const storage = new FaultyStorage(new FsStorage(stack.dataDir), /\/original-/, 1_000);
    const worker = await stack.startWorker({}, { storage });
    try {
      const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'waits at storing' });
      const waiting = await eventually(async () => {
        const g = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
        return g.status === 'queued' && g.error ? g : undefined;
      }, 20_000);
      expect(waiting).toMatchObject({ status: 'queued', stage: 'storing', attempts: 1, error: { code: 'storage_failed', retryable: true } });
      // what the client, its webhook and the dashboard read names no file, so no file token
      const token = (await stack.api.store.get(created.body.id))!.fileToken;
      expect(waiting.error.message).toBe("Could not store the original: ENOSPC: no space left on device, open '<file>'");
      const { logs } = await stack.api.queues.generate.getJobLogs(created.body.id);
      expect(JSON.stringify([waiting, logs])).not.toContain(token);
      storage.heal();
      const done = await settled(created.body.id);
      expect(done).toMatchObject({ status: 'completed', stage: 'done', attempts: 1 });
    } finally {
      await worker.close();
    }
  });

  it('counts against the attempts once the generation is older than its bytes are kept', async () => {
    const before = upstream.calls.length;
    const storage = new FaultyStorage(new FsStorage(stack.dataDir), /\/thumb-\d+-/, 100);
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'outage past a day' });
    // as if it had been waiting for the store for a day already
    await stack.redis.hset(`${stack.prefix}:gen:${created.body.id}`, 'createdAt', new Date(Date.now() - 25 * 3600_000).toISOString());
    const worker = await stack.startWorker({}, { storage });
    try {
      const done = await settled(created.body.id);
      expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'storage_failed', retryable: true } });
      expect(upstream.calls.length - before).toBe(1);
    } finally {
      await worker.close();
    }
  });
});

describe('checkpoints: spooled bytes that expired', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'spool-expired', worker: false, env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('are forgotten: the generation asks the upstream once and completes', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'spool gone' });
    // as left by an attempt whose spool has since expired
    await stack.redis.hset(`${stack.prefix}:gen:${created.body.id}`, 'spoolKey', `${stack.prefix}:spool:${created.body.id}`);
    await stack.startWorker();
    const done = await eventually(async () => {
      const g = await stack.api.store.get(created.body.id);
      return g && (g.status === 'completed' || g.status === 'failed') ? g : undefined;
    }, 20_000);
    expect(done.status).toBe('completed');
    expect(done.spoolKey).toBeUndefined();
    expect(upstream.calls).toHaveLength(1);
  });
});
