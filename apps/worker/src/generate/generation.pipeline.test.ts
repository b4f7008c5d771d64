import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { FsStorage, GenerationStore, keysFor, newFileToken, newId, type GeneratorProvider, type GenerationRecord } from '@imagegen/shared';
import { GenerationPipeline } from './generation.pipeline';
import { Semaphore } from '../images/semaphore';
import { until } from '../__tests__/until';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-pipeline-${randomBytes(4).toString('hex')}`;
let redis: Redis;
let dataDir: string;

beforeAll(async () => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-pipeline-'));
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
  await rm(dataDir, { recursive: true, force: true });
});

/** A store whose puts of originals wait while `held` is set (a runner stalled mid-write), or fail while `down` is. */
class StallingStorage extends FsStorage {
  held: Promise<void> | null = null;
  stalled = 0;
  down = false;
  override async put(key: string, data: Buffer): Promise<{ bytes: number }> {
    if (this.down) throw new Error('the store is down');
    if (this.held && key.includes('/original')) {
      this.stalled++;
      await this.held;
    }
    return super.put(key, data);
  }
}

const solid = (r: number, g: number, b: number) => sharp({ create: { width: 96, height: 64, channels: 3, background: { r, g, b } } }).png().toBuffer();

/** A pipeline whose upstream makes another image at each call (as a real generator does), and a new generation for it. */
async function setUp(images: Buffer[], spoolBudgetBytes = 1 << 30) {
  const store = new GenerationStore(redis, keysFor(prefix), 3600);
  const storage = new StallingStorage(dataDir);
  let calls = 0;
  const provider: GeneratorProvider = { name: 'builtin', generate: async () => ({ kind: 'bytes', data: images[calls++]!, contentType: 'image/png' }) };
  // a 100 ms timeout: the upstream lease is 5.1 s
  const pipeline = new GenerationPipeline(store, storage, provider, new Semaphore(2), {
    timeoutMs: 100,
    maxDownloadBytes: 10_000_000,
    spoolBudgetBytes,
    thumbnails: { sizes: [32], format: 'webp', quality: 80, maxPixels: 10_000_000, placeholder: false },
  });
  const record: GenerationRecord = {
    id: newId('gen'),
    tenant: 'default',
    status: 'queued',
    stage: 'queued',
    progress: 0,
    request: { topic: 'two runners', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
    metadata: null,
    priority: 'normal',
    attempts: 0,
    createdAt: new Date().toISOString(),
    fileToken: newFileToken(),
  };
  await store.create(record);
  return { store, storage, pipeline, record };
}

const ctx = (attempt: number, ranBefore = attempt > 1) => ({ attempt, ranBefore, signal: new AbortController().signal, onStage: () => undefined });
const filesOf = async (token: string) => (await readdir(path.join(dataDir, 'files', token))).filter((f) => !f.startsWith('.')).sort();

it('a runner that goes on past its lease writes beside the files of the run that took over, never over them', async () => {
  const images = [await solid(255, 0, 0), await solid(0, 0, 255)];
  const { store, storage, pipeline, record } = await setUp(images);

  // the first runner has its image and stalls writing it (a paused process, a hung mount)…
  let release!: () => void;
  storage.held = new Promise<void>((resolve) => (release = resolve));
  const first = pipeline.run(record, ctx(1));
  await until(() => (storage.stalled === 1 ? true : undefined), 5_000);
  storage.held = null;
  // …past its lease: its job handed out again, another runner makes and stores the generation
  await new Promise((resolve) => setTimeout(resolve, 5_300));
  expect(await pipeline.run(record, ctx(2))).toEqual({ status: 'completed', upstreamCalled: true });
  const done = await store.get(record.id);
  expect(done?.status).toBe('completed');

  // the first runner wakes and writes what it held
  release();
  await first.catch(() => undefined);

  // what the record names is the second run's work, byte for byte, thumbnails included
  const result = done!.result!;
  expect((await storage.read(result.image.key)).equals(images[1]!)).toBe(true);
  const thumb = await sharp(await storage.read(result.thumbnails[0]!.key)).raw().toBuffer({ resolveWithObject: true });
  // blue, not red (webp is lossy: near enough)
  expect(thumb.data[0]).toBeLessThan(40);
  expect(thumb.data[2]).toBeGreaterThan(215);
  // the stalled write landed beside them, after the second run tidied, in the generation's folder (removed with it)
  expect(await filesOf(record.fileToken)).toHaveLength(3);
});

it('a run after an earlier one removes the files the result does not name; a first run lists nothing', async () => {
  for (const ranBefore of [true, false]) {
    const { storage, pipeline, record } = await setUp([await solid(0, 200, 0)]);
    // what an earlier run left: its original stored, then it died before its checkpoint
    await storage.put(`${record.fileToken}/original-0dead0ab.png`, await solid(9, 9, 9));
    expect(await pipeline.run(record, ctx(2, ranBefore))).toMatchObject({ status: 'completed' });
    const named = (await filesOf(record.fileToken)).filter((f) => !f.startsWith('original-0dead0ab'));
    expect(named).toEqual([expect.stringMatching(/^original-[0-9a-f]{8}\.png$/), expect.stringMatching(/^thumb-32-[0-9a-f]{8}\.webp$/)]);
    expect(await filesOf(record.fileToken)).toHaveLength(ranBefore ? 2 : 3);
  }
});

it('keeps the paid-for bytes of an original the store refused while the spool has room, and lets the attempt count once it has none', async () => {
  const image = await solid(0, 128, 0);
  // room for one image's bytes, not two
  const budget = Math.round(image.length * 1.5);
  const first = await setUp([image], budget);
  first.storage.down = true;
  const waited = (await first.pipeline.run(first.record, ctx(1)).catch((e: unknown) => e)) as Error;
  // a wait for the store, spending no attempt: the bytes are held
  expect(waited.constructor.name).toBe('StorageUnavailable');
  expect((await first.store.get(first.record.id))!.spoolKey).toBe(keysFor(prefix).spool(first.record.id));

  const second = await setUp([image], budget);
  second.storage.down = true;
  const failed = (await second.pipeline.run(second.record, ctx(1)).catch((e: unknown) => e)) as Error & { code?: string };
  // before: spooled too, however much was held already
  expect([failed.constructor.name, failed.code]).toEqual(['GenerationFailure', 'storage_failed']);
  expect(await redis.exists(keysFor(prefix).spool(second.record.id))).toBe(0);
  await first.store.dropSpool(first.record.id);
});
