import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Storage, type Storage } from '@imagegen/shared';
import { abortedDownload, get } from './support/downloads';
import { checkResultImages } from './support/images';
import { openMaintenance } from './support/maintenance';
import { sleep } from './support/net';
import { storedFiles } from './support/processes';
import { startS3Server, useS3Credentials, type S3Server } from './support/s3';
import { postJson, startStack, type Stack } from './support/stack';

/**
 * STORAGE=s3 against a real S3-protocol server (s3rver) on a real socket: the backend itself,
 * generations whose files live in the bucket (streamed by the API, or served by the bucket
 * itself through S3_PUBLIC_BASE_URL), and the retention sweep emptying the bucket.
 */

const tokenOf = (key: string) => key.split('/')[0]!;

/** The bucket's keys grouped by file token, names sorted. */
async function objectsByToken(s3: S3Server): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const key of await s3.keys()) (out[tokenOf(key)] ??= []).push(key.slice(key.indexOf('/') + 1));
  return out;
}

/** File names without the tag of the run that wrote them (`original-1a2b3c4d.png` → `original.png`). */
const untagged = (names: string[]) => names.map((n) => n.replace(/-[0-9a-f]{8}(\.[a-z0-9]+)$/, '$1'));

const pathOf = (url: string) => new URL(url).pathname;

/** What the bucket keeps with an object (its headers), read by a client of the test's own. */
async function s3Object(key: string) {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
  try {
    return await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
  } finally {
    client.destroy();
  }
}

let s3: S3Server;
beforeAll(async () => {
  useS3Credentials();
  // its request log shows how uploads went
  s3 = await startS3Server({ log: true });
});
afterAll(() => s3.destroy());

describe('the S3 backend', () => {
  let storage: S3Storage;
  beforeAll(() => {
    storage = new S3Storage({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
  });
  afterAll(() => storage.close());

  it('stores small files in one PutObject and large ones in parts, reading back the same bytes', async () => {
    const small = randomBytes(200 * 1024);
    const large = randomBytes(17 * 1024 * 1024);
    expect(await storage.put('backendAAAAAAAA/original.png', small)).toEqual({ bytes: small.length });
    expect(await storage.put('backendAAAAAAAA/large.png', large)).toEqual({ bytes: large.length });
    expect((await storage.read('backendAAAAAAAA/original.png')).equals(small)).toBe(true);
    expect((await storage.read('backendAAAAAAAA/large.png')).equals(large)).toBe(true);
    expect(await storage.stat('backendAAAAAAAA/large.png')).toMatchObject({ bytes: large.length, contentType: 'image/png', etag: expect.stringMatching(/^"[^"]+"$/) });
    // what the server saw: 17 MiB went up in three 8 MiB parts, the small file in one PUT
    const log = s3.output().split('\n');
    expect(log.flatMap((l) => /Stored part (\d+) of /.exec(l)?.[1] ?? []).sort()).toEqual(['1', '2', '3']);
    expect(log.filter((l) => l.includes('Stored object "backendAAAAAAAA/large.png"'))).toHaveLength(1);
    expect(log.filter((l) => l.includes('Stored object "backendAAAAAAAA/original.png"'))).toHaveLength(1);
    expect(await storage.stat('backendAAAAAAAA/missing.png')).toBeNull();
    expect(await storage.open('backendAAAAAAAA/missing.png')).toBeNull();
    await expect(storage.put('../escape/x.png', small)).rejects.toThrow(/invalid storage key/);
  });

  it('a bucket that does not exist is a broken store, never a missing file, whether read whole, by range or looked up', async () => {
    const astray = new S3Storage({ bucket: 'no-such-bucket', endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    try {
      await expect(astray.open('backendAAAAAAAA/original.png')).rejects.toThrow();
      await expect(astray.open('backendAAAAAAAA/original.png', { start: 0, end: 9 })).rejects.toThrow();
      // before: null, as for a missing file (a HEAD's NotFound has no body to tell them apart)
      await expect(astray.stat('backendAAAAAAAA/original.png')).rejects.toThrow('the bucket no-such-bucket does not exist');
      // what processes check (and log) as they start
      await expect(astray.reachable()).rejects.toThrow('the bucket no-such-bucket does not exist');
      await expect(storage.reachable()).resolves.toBeUndefined();
    } finally {
      await astray.close();
    }
    // the real bucket: a missing object is still just missing
    expect(await storage.stat('backendAAAAAAAA/nothing-here.png')).toBeNull();
  });

  it('opens an object whole or by range, knowing the whole size', async () => {
    const data = Buffer.from('0123456789abcdef');
    await storage.put('backendBBBBBBBB/original.png', data);
    const body = async (range?: { start: number; end: number }) => {
      const opened = await storage.open('backendBBBBBBBB/original.png', range);
      const chunks: Buffer[] = [];
      for await (const c of opened!.stream) chunks.push(c as Buffer);
      return { bytes: opened!.info.bytes, text: Buffer.concat(chunks).toString() };
    };
    expect(await body()).toEqual({ bytes: 16, text: '0123456789abcdef' });
    expect(await body({ start: 10, end: 15 })).toEqual({ bytes: 16, text: 'abcdef' });
  });

  it('bodies held open by slow readers leave the connections of every other call free', async () => {
    const few = new S3Storage({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 2 });
    try {
      await few.put('backendDDDDDDDD/original.png', randomBytes(4 * 1024 * 1024));
      // two downloads whose clients stopped reading: each holds its connection
      const held = [await few.open('backendDDDDDDDD/original.png'), await few.open('backendDDDDDDDD/original.png')];
      const t0 = Date.now();
      // before: waited for a connection of the same pool, then failed after the connect timeouts
      expect(await few.stat('backendDDDDDDDD/original.png')).toMatchObject({ bytes: 4 * 1024 * 1024 });
      expect(Date.now() - t0).toBeLessThan(3000);
      for (const h of held) h!.stream.destroy();
    } finally {
      await few.close();
    }
  });

  it('downloads whose clients stopped reading, more than any pool holds, leave every other download its own connection', async () => {
    const store = new S3Storage({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, answerTimeoutMs: 2000 });
    try {
      await store.put('backendEEEEEEEE/original.png', randomBytes(512 * 1024));
      // 70 bodies no one reads: more than the 64 connections a pool of calls keeps
      const held = await Promise.all(Array.from({ length: 70 }, () => store.open('backendEEEEEEEE/original.png')));
      const t0 = Date.now();
      // before: the 71st waited for one of theirs, and failed after its deadlines
      const another = await store.open('backendEEEEEEEE/original.png');
      expect(Date.now() - t0).toBeLessThan(1500);
      let bytes = 0;
      for await (const chunk of another!.stream) bytes += (chunk as Buffer).length;
      expect(bytes).toBe(512 * 1024);
      for (const h of held) h!.stream.destroy();
    } finally {
      await store.close();
    }
  });

  it('a store that accepts connections and does not answer fails each call within its deadlines, not after minutes', async () => {
    const hurried = new S3Storage({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, answerTimeoutMs: 500 });
    await hurried.put('backendEEEEEEEE/original.png', Buffer.from('frozen'));
    s3.pause();
    try {
      for (const call of [() => hurried.stat('backendEEEEEEEE/original.png'), () => hurried.open('backendEEEEEEEE/original.png'), () => hurried.put('backendEEEEEEEE/thumb-16.webp', Buffer.from('x'))]) {
        const t0 = Date.now();
        await expect(call()).rejects.toThrow();
        // two attempts of half a second, and the pause between them (before: a minute idle per attempt, three attempts)
        expect(Date.now() - t0).toBeLessThan(5000);
      }
    } finally {
      s3.resume();
      await hurried.close();
    }
    // and once it answers again, so does every call
    expect(await storage.stat('backendEEEEEEEE/original.png')).toMatchObject({ bytes: 6 });
  });

  it('removes a prefix page by page, more than one DeleteObjects call holds, and nothing beside it', async () => {
    const names = Array.from({ length: 1005 }, (_, i) => `backendCCCCCCCC/f${i}.png`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < names.length) await storage.put(names[next++]!, Buffer.from('x'));
      }),
    );
    await storage.put('backendCCCCCCCCX/kept.png', Buffer.from('neighbour'));
    expect(await s3.keys('backendCCCCCCCC/')).toHaveLength(1005);
    // what a completed generation names stays, on any page
    await storage.removeOthers('backendCCCCCCCC', new Set(['backendCCCCCCCC/f3.png', 'backendCCCCCCCC/f1003.png']));
    expect((await s3.keys('backendCCCCCCCC/')).sort()).toEqual(['backendCCCCCCCC/f1003.png', 'backendCCCCCCCC/f3.png']);
    await storage.removePrefix('backendCCCCCCCC');
    expect(await s3.keys('backendCCCCCCCC/')).toEqual([]);
    // a token that merely starts the same way is another generation's
    expect(await s3.keys('backendCCCCCCCCX/')).toEqual(['backendCCCCCCCCX/kept.png']);
    await expect(storage.removePrefix('../')).rejects.toThrow(/invalid storage prefix/);
    await s3.clear();
  });
});

describe('STORAGE=s3, files streamed by the API', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 's3', env: { ...s3.env(), THUMBNAIL_SIZES: '512,128' } });
  });
  afterAll(() => stack.close());

  it('generations complete with their original and thumbnails in the bucket, nothing on disk, downloadable by URL', async () => {
    const answers = await Promise.all(['SQUARE', 'LANDSCAPE'].map((size) => postJson(`${stack.baseUrl}/v1/generations`, { topic: `bucket ${size}`, style: 'VECTOR_IMAGE', size }, { Prefer: 'wait=60' })));
    for (const a of answers) expect(a.body.status).toBe('completed');
    const objects = await objectsByToken(s3);
    for (const a of answers) {
      const token = pathOf(a.body.result.image.url).split('/')[2]!;
      expect(a.body.result.image.url).toMatch(new RegExp(`^${stack.baseUrl}/files/${token}/original-[0-9a-f]{8}\\.png$`));
      expect(untagged(objects[token]!)).toEqual(['original.png', 'thumb-128.webp', 'thumb-512.webp']);
    }
    expect(Object.keys(objects)).toHaveLength(2);
    expect(await storedFiles(stack.dataDir)).toEqual({});
    expect(await checkResultImages(answers[0]!.body, 'SQUARE')).toEqual([]);
    expect(await checkResultImages(answers[1]!.body, 'LANDSCAPE')).toEqual([]);
  });

  describe('one large object', () => {
    const KEY = 'streamedAAAAAAAAAAAA/original.png';
    const SIZE = 8 * 1024 * 1024;
    const data = randomBytes(SIZE);
    beforeAll(() => stack.api.storage.put(KEY, data));

    it('answers GET with the object, its ETag and Last-Modified, immutable caching; HEAD without a body; 304 on If-None-Match', async () => {
      const res = await get(stack.baseUrl, `/files/${KEY}`);
      expect(res.status).toBe(200);
      expect(res.headers).toMatchObject({
        'content-type': 'image/png',
        'content-length': String(SIZE),
        'cache-control': 'public, max-age=2592000, immutable',
        'x-content-type-options': 'nosniff',
        'accept-ranges': 'bytes',
      });
      const info = await stack.api.storage.stat(KEY);
      expect(res.headers.etag).toBe(info?.etag);
      // the object itself is written so: a CDN in front of the bucket keeps it no longer than the retention (before: a year)
      expect((await s3Object(KEY))?.CacheControl).toBe('public, max-age=2592000, immutable');
      expect(Date.parse(String(res.headers['last-modified']))).toBe(info!.modifiedAt!.getTime());
      expect(res.body.equals(data)).toBe(true);

      const head = await get(stack.baseUrl, `/files/${KEY}`, {}, 'HEAD');
      expect([head.status, head.headers['content-length'], head.headers.etag, head.body.length]).toEqual([200, String(SIZE), res.headers.etag, 0]);
      const again = await get(stack.baseUrl, `/files/${KEY}`, { 'If-None-Match': String(res.headers.etag) });
      expect([again.status, again.body.length, again.headers.etag]).toEqual([304, 0, res.headers.etag]);
      expect((await get(stack.baseUrl, `/files/${KEY}`, { 'If-None-Match': '"other"' })).status).toBe(200);
    });

    it('answers ranges with 206 and exactly those bytes, 416 outside the object, and the whole object when If-Range no longer holds', async () => {
      for (const [range, start, end] of [
        ['bytes=1000-1999', 1000, 1999],
        ['bytes=0-0', 0, 0],
        [`bytes=${SIZE - 500}-`, SIZE - 500, SIZE - 1],
        ['bytes=-300', SIZE - 300, SIZE - 1],
        [`bytes=${SIZE - 10}-${SIZE + 1000}`, SIZE - 10, SIZE - 1],
      ] as const) {
        const res = await get(stack.baseUrl, `/files/${KEY}`, { Range: range });
        expect([range, res.status, res.headers['content-range'], res.headers['content-length']]).toEqual([range, 206, `bytes ${start}-${end}/${SIZE}`, String(end - start + 1)]);
        expect(res.body.equals(data.subarray(start, end + 1))).toBe(true);
      }
      const outside = await get(stack.baseUrl, `/files/${KEY}`, { Range: `bytes=${SIZE}-` });
      expect([outside.status, outside.headers['content-type'], outside.headers['content-range'], outside.headers['cache-control']]).toEqual([
        416,
        'application/problem+json; charset=utf-8',
        `bytes */${SIZE}`,
        undefined,
      ]);
      const etag = (await stack.api.storage.stat(KEY))!.etag!;
      expect((await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9', 'If-Range': etag })).status).toBe(206);
      const changed = await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9', 'If-Range': '"an-older-version"' });
      expect([changed.status, changed.body.length]).toEqual([200, SIZE]);
      // several ranges at once: the whole object, which RFC 9110 allows
      expect((await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9,100-109' })).status).toBe(200);
      const headRange = await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9' }, 'HEAD');
      expect([headRange.status, headRange.headers['content-length'], headRange.body.length]).toEqual([206, '10', 0]);
      // the problem keeps what every answer carries (before: every header gone but the problem's own)
      const traced = await get(stack.baseUrl, `/files/${KEY}`, { Range: `bytes=${SIZE}-`, 'X-Request-Id': 's3-416' });
      expect([traced.status, traced.headers['x-request-id'], typeof traced.headers['content-security-policy'], traced.headers['x-content-type-options']]).toEqual([416, 's3-416', 'string', 'nosniff']);
    });

    it('answers If-Match and If-Unmodified-Since as files on disk are answered: 412 when they fail, the object when they hold', async () => {
      const etag = (await stack.api.storage.stat(KEY))!.etag!;
      // before: 200 and the whole object, whatever the precondition said
      for (const headers of <Record<string, string>[]>[{ 'If-Match': '"nope"' }, { 'If-Match': `"nope", W/${etag}` }, { 'If-Unmodified-Since': 'Wed, 01 Jan 2020 00:00:00 GMT' }]) {
        const failed = await get(stack.baseUrl, `/files/${KEY}`, headers);
        expect([failed.status, failed.headers['content-type'], failed.headers.etag, failed.body.length > 0]).toEqual([412, 'application/problem+json; charset=utf-8', undefined, true]);
      }
      for (const headers of <Record<string, string>[]>[{ 'If-Match': etag }, { 'If-Match': `"nope", ${etag}` }, { 'If-Match': '*' }, { 'If-Unmodified-Since': new Date(Date.now() + 60_000).toUTCString() }]) {
        const held = await get(stack.baseUrl, `/files/${KEY}`, headers);
        expect([held.status, held.body.length]).toEqual([200, SIZE]);
      }
      // If-Match wins over If-Unmodified-Since, as RFC 9110 says
      expect((await get(stack.baseUrl, `/files/${KEY}`, { 'If-Match': etag, 'If-Unmodified-Since': 'Wed, 01 Jan 2020 00:00:00 GMT' })).status).toBe(200);
    });

    it('50 downloads aborted mid-body leave the connections to the store where they were', async () => {
      const storage = stack.api.storage as S3Storage;
      // one whole download first, so a kept-alive connection is part of the baseline
      expect((await get(stack.baseUrl, `/files/${KEY}`)).status).toBe(200);
      const before = storage.openSockets();
      const partial: number[] = [];
      for (let i = 0; i < 50; i++) partial.push((await abortedDownload(stack.baseUrl, `/files/${KEY}`)).bodyBytes);
      expect(Math.max(...partial)).toBeLessThan(SIZE);
      // each aborted read destroys its connection a moment after the client's socket closes
      const deadline = Date.now() + 5000;
      while (storage.openSockets() > before && Date.now() < deadline) await sleep(50);
      const after = storage.openSockets();
      process.stdout.write(`[s3] connections to the store before ${before}, after 50 aborted downloads ${after}\n`);
      expect(before).toBeGreaterThanOrEqual(1);
      expect(after).toBeLessThanOrEqual(before);
      // and whole downloads go on working
      const whole = await get(stack.baseUrl, `/files/${KEY}`);
      expect([whole.status, whole.body.equals(data)]).toEqual([200, true]);
      expect(storage.openSockets()).toBeLessThanOrEqual(before + 1);
    });

    it('answers 503 while the store is away, and serves again once it is back', async () => {
      const batch = await postJson(`${stack.baseUrl}/v1/batches`, { items: [{ topic: 'archived while away', size: 'SQUARE' }] });
      const deadline = Date.now() + 60_000;
      while ((await get(stack.baseUrl, `/v1/batches/${batch.body.id}`)).body.toString().includes('"in_progress"') && Date.now() < deadline) await sleep(100);
      expect(JSON.parse((await get(stack.baseUrl, `/v1/batches/${batch.body.id}`)).body.toString())).toMatchObject({ status: 'completed', counts: { completed: 1 } });
      await s3.stop();
      try {
        const res = await get(stack.baseUrl, `/files/${KEY}`);
        expect([res.status, res.headers['content-type'], res.headers['retry-after']]).toEqual([503, 'application/problem+json; charset=utf-8', '5']);
        expect(JSON.parse(res.body.toString())).toMatchObject({ status: 503, detail: 'The file store is not reachable; try again shortly' });
        // the archive says so before it begins (before: 200, results.jsonl, then the connection cut)
        const archive = await get(stack.baseUrl, `/v1/batches/${batch.body.id}/archive`);
        expect([archive.status, archive.headers['content-type'], archive.headers['retry-after']]).toEqual([503, 'application/problem+json; charset=utf-8', '5']);
      } finally {
        await s3.start();
      }
      expect((await get(stack.baseUrl, `/files/${KEY}`)).status).toBe(200);
      const archive = await get(stack.baseUrl, `/v1/batches/${batch.body.id}/archive`);
      expect([archive.status, archive.headers['content-type']]).toEqual([200, 'application/zip']);
    });
  });

  it('the retention sweep removes the objects of generations whose retention ended, and only those', async () => {
    const [expired, kept] = await Promise.all(['expired', 'kept'].map((topic) => postJson(`${stack.baseUrl}/v1/generations`, { topic, style: 'VECTOR_IMAGE', size: 'SQUARE' }, { Prefer: 'wait=60' })));
    const expiredToken = pathOf(expired!.body.result.image.url).split('/')[2]!;
    const keptToken = pathOf(kept!.body.result.image.url).split('/')[2]!;
    expect(await s3.keys(`${expiredToken}/`)).toHaveLength(3);
    // as if its retention had ended
    expect(await stack.redis.zadd(stack.api.keys.fileExpiry(), 'XX', 'CH', 0, expiredToken)).toBe(1);
    const maintenance = openMaintenance(stack.prefix);
    try {
      expect(await maintenance.sweepOnce()).toMatchObject({ files: 1, temporary: 0 });
    } finally {
      await maintenance.close();
    }
    expect(await s3.keys(`${expiredToken}/`)).toEqual([]);
    expect(untagged(await s3.keys(`${keptToken}/`))).toEqual(['original.png', 'thumb-128.webp', 'thumb-512.webp'].map((n) => `${keptToken}/${n}`));
    expect((await get(stack.baseUrl, pathOf(expired!.body.result.image.url))).status).toBe(404);
    expect((await get(stack.baseUrl, pathOf(kept!.body.result.image.url))).status).toBe(200);
    expect(await stack.redis.zscore(stack.api.keys.fileExpiry(), expiredToken)).toBeNull();
  });

  it('a sweep while the store is away keeps the due files due, and removes them once it is back', async () => {
    const done = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'due while away', style: 'VECTOR_IMAGE', size: 'SQUARE' }, { Prefer: 'wait=60' });
    const token = pathOf(done.body.result.image.url).split('/')[2]!;
    await stack.redis.zadd(stack.api.keys.fileExpiry(), 'XX', 0, token);
    const maintenance = openMaintenance(stack.prefix);
    try {
      await s3.stop();
      try {
        expect(await maintenance.sweepOnce()).toMatchObject({ files: 0 });
      } finally {
        await s3.start();
      }
      expect(await stack.redis.zscore(stack.api.keys.fileExpiry(), token)).toBe('0');
      expect(await s3.keys(`${token}/`)).toHaveLength(3);
      expect(await maintenance.sweepOnce()).toMatchObject({ files: 1 });
    } finally {
      await maintenance.close();
    }
    expect(await s3.keys(`${token}/`)).toEqual([]);
  });
});

describe('STORAGE=s3 with S3_PUBLIC_BASE_URL: the bucket serves the files', () => {
  let stack: Stack;
  const storageCalls: string[] = [];
  beforeAll(async () => {
    await s3.clear();
    stack = await startStack({ name: 's3-public', env: { ...s3.env(), S3_PUBLIC_BASE_URL: s3.bucketUrl, THUMBNAIL_SIZES: '256' } });
    // every read the API makes of the store, should it make any
    const inner = stack.api.storage;
    stack.api.storage = new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          storageCalls.push(String(prop));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as Storage;
  });
  afterAll(() => stack.close());

  it('result URLs point at the bucket, answer without credentials, and the API never reads the bytes', async () => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'public', style: 'VECTOR_IMAGE', size: 'PORTRAIT' }, { Prefer: 'wait=60' });
    expect(res.body.status).toBe('completed');
    const [token] = Object.keys(await objectsByToken(s3));
    expect(res.body.result.image.url).toMatch(new RegExp(`^${s3.bucketUrl}/${token}/original-[0-9a-f]{8}\\.png$`));
    expect(res.body.result.thumbnails.map((t: { url: string }) => t.url)).toEqual([expect.stringMatching(new RegExp(`^${s3.bucketUrl}/${token}/thumb-256-[0-9a-f]{8}\\.webp$`))]);
    // the same URLs in GET and in the seed endpoint's downloadUrl
    const again = (await fetch(`${stack.baseUrl}/v1/generations/${res.body.id}`).then((r) => r.json())) as { result: { image: { url: string } } };
    expect(again.result.image.url).toBe(res.body.result.image.url);
    const seed = await postJson(`${stack.baseUrl}/api/odin/v3/tools/image-generator`, { topic: 'seed public', style: 'VECTOR_IMAGE', size: 'SQUARE' });
    expect(seed.body.downloadUrl).toMatch(new RegExp(`^${s3.bucketUrl}/[A-Za-z0-9_-]+/original-[0-9a-f]{8}\\.png$`));

    expect(await checkResultImages(res.body, 'PORTRAIT')).toEqual([]);
    const seedOriginal = await fetch(seed.body.downloadUrl);
    expect([seedOriginal.status, seedOriginal.headers.get('content-type'), (await seedOriginal.arrayBuffer()).byteLength > 0]).toEqual([200, 'image/png', true]);
    const part = await get(s3.endpoint, pathOf(res.body.result.image.url), { Range: 'bytes=0-7' });
    expect([part.status, part.body.toString('latin1')]).toEqual([206, '\x89PNG\r\n\x1a\n']);
    expect(storageCalls).toEqual([]);
  });
});
