import { encodeFields, newFileToken, type GenerationRecord, type GenerationStatus } from '@imagegen/shared';
import type { Redis } from 'ioredis';
import { openMonitor, plainRedis } from './support/redis';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const TOTAL = 50_000;
const TENANT = 'default';

/** Every command Redis runs on keys under `prefix` while `during` runs (MONITOR sees inside pipelines too). */
async function commandsDuring(redis: Redis, prefix: string, during: () => Promise<unknown>): Promise<string[]> {
  const monitor = await openMonitor(redis);
  const seen: string[] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args.some((a) => a.startsWith(prefix))) seen.push(args[0]!.toLowerCase());
  });
  await during();
  // MONITOR output trails the replies a little
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  return seen;
}

describe('listing with 50,000 records in a tenant', () => {
  let stack: Stack;
  let watcher: Redis;
  const ids: string[] = [];
  beforeAll(async () => {
    stack = await startStack({ name: 'listing', worker: false });
    watcher = plainRedis();
    const keys = stack.api.keys;
    // written straight into Redis, as the store lays them out: the oldest 10 are failed, the rest completed
    const t0 = Date.now() - TOTAL;
    for (let chunk = 0; chunk < TOTAL; chunk += 5000) {
      const pipeline = stack.redis.pipeline();
      for (let i = chunk; i < chunk + 5000; i++) {
        const id = `gen_${(t0 + i).toString(36).padStart(9, '0')}${String(i).padStart(14, '0')}`;
        ids.push(id);
        const status: GenerationStatus = i < 10 ? 'failed' : 'completed';
        const record: GenerationRecord = {
          id, tenant: TENANT, status, stage: 'done', progress: 100, request: { topic: `t${i}`, style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
          metadata: null, priority: 'normal', attempts: 1, createdAt: new Date(t0 + i).toISOString(), fileToken: newFileToken(),
        };
        pipeline.hset(keys.generation(id), ...encodeFields(record));
        pipeline.zadd(keys.tenantGenerations(TENANT), 0, id);
        pipeline.zadd(keys.tenantGenerations(TENANT, status), 0, id);
      }
      await pipeline.exec();
    }
  }, 120_000);
  afterAll(async () => {
    watcher.disconnect();
    await stack.close();
  });

  const page = (query: string) => getJson(`${stack.baseUrl}/v1/generations?${query}`);

  it.each([
    ['newest first, no status', 'limit=20'],
    ['a status whose records are the oldest 10 of 50,000', 'status=failed&limit=20'],
    ['a status with no records', 'status=active&limit=20'],
  ])('%s: one page costs O(page) Redis commands', async (_name, query) => {
    let body: { data: Array<{ id: string; status: string }>; hasMore: boolean } = { data: [], hasMore: false };
    const commands = await commandsDuring(watcher, stack.prefix, async () => {
      const res = await page(query);
      expect(res.status).toBe(200);
      body = res.body;
    });
    // a range read and one HGETALL per record of the page (plus one to know there is more)
    expect(commands.filter((c) => c === 'hgetall').length).toBeLessThanOrEqual(21);
    expect(commands.length).toBeLessThanOrEqual(25);
    if (query.startsWith('status=failed')) expect(body.data.map((g) => g.id)).toEqual(ids.slice(0, 10).reverse());
    if (query.startsWith('status=active')) expect(body.data).toEqual([]);
    if (query === 'limit=20') {
      expect(body.data.map((g) => g.id)).toEqual(ids.slice(-20).reverse());
      expect(body.hasMore).toBe(true);
    }
  });

  it('following the cursor deep into the history still costs one page', async () => {
    const first = await page('status=completed&limit=100');
    let cursor = first.body.nextCursor as string;
    for (let i = 0; i < 3; i++) cursor = (await page(`status=completed&limit=100&cursor=${cursor}`)).body.nextCursor;
    let next: { data: Array<{ id: string }> } = { data: [] };
    const commands = await commandsDuring(watcher, stack.prefix, async () => {
      next = (await page(`status=completed&limit=100&cursor=${cursor}`)).body;
    });
    expect(next.data.map((g) => g.id)).toEqual(ids.slice(-500, -400).reverse());
    expect(commands.length).toBeLessThanOrEqual(105);
  });
});

describe('newest first means createdAt too', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'listing-order', worker: false });
  });
  afterAll(async () => {
    await stack.close();
  });

  it('generations and batches submitted at once are listed in the order of their createdAt', async () => {
    // at once: each id is made before its record's script runs, which some run later than others
    const submitted = await Promise.all([
      ...Array.from({ length: 300 }, (_, i) => postJson(`${stack.baseUrl}/v1/generations`, { topic: `at once ${i}` })),
      ...Array.from({ length: 6 }, (_, i) => postJson(`${stack.baseUrl}/v1/batches`, { items: Array.from({ length: 5 }, (_, j) => ({ topic: `batch ${i} item ${j}` })) })),
    ]);
    expect(submitted.map((r) => r.status)).toEqual(Array(306).fill(202));
    // every page, newest first
    const generations: Array<{ createdAt: string }> = [];
    for (let cursor = ''; ; ) {
      const { body } = await getJson(`${stack.baseUrl}/v1/generations?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      generations.push(...body.data);
      if (!body.nextCursor) break;
      cursor = body.nextCursor;
    }
    const batches = (await getJson(`${stack.baseUrl}/v1/batches?limit=100`)).body.data as Array<{ createdAt: string }>;
    expect(generations).toHaveLength(330);
    expect(batches).toHaveLength(6);
    for (const listed of [generations, batches]) {
      const times = listed.map((r) => r.createdAt);
      expect(times).toEqual([...times].sort().reverse());
    }
  });
});
