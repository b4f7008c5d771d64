import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TEMPORARY_DIR, type Storage } from '@imagegen/shared';
import { abortedDownload, get } from './support/downloads';
import { sleep } from './support/net';
import { killAllSpawned, spawnApi } from './support/processes';
import { startStack, type Stack } from './support/stack';

/**
 * Result files as clients fetch them: conditional and partial GETs, HEAD, and clients that
 * go away mid-download (each must leave no file descriptor behind in the API process, which
 * runs in this process with startStack).
 */

const TOKEN = 'filesTokenAAAAAAAAAAAA';
const KEY = `${TOKEN}/original.png`;
// big enough that a client that stops reading leaves the server blocked mid-body
const SIZE = 8 * 1024 * 1024;
const ABORTS = 50;

/** Descriptors of this process open on a file under `dir`. */
function fdsUnder(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

/** The count once it has come back to `baseline` (closes trail the socket's end by a moment), or after 5 s. */
async function settledFds(dir: string, baseline: number): Promise<number> {
  const deadline = Date.now() + 5000;
  let n = fdsUnder(dir);
  while (n !== baseline && Date.now() < deadline) {
    await sleep(50);
    n = fdsUnder(dir);
  }
  return n;
}

/** The same files through the streaming path with ranged reads: a backend with no local files (object storage). */
function withoutLocalPaths(inner: Storage): Storage {
  return {
    put: (k, d) => inner.put(k, d),
    read: (k) => inner.read(k),
    stat: (k) => inner.stat(k),
    createReadStream: (k) => inner.createReadStream(k),
    open: (k, r) => inner.open!(k, r),
    removePrefix: (p) => inner.removePrefix(p),
    removeOthers: (p, keep) => inner.removeOthers(p, keep),
  };
}

/** A backend with plain streams only: no local files, no ranged reads. */
function streamsOnly(inner: Storage): Storage {
  const { open: _open, ...rest } = withoutLocalPaths(inner);
  return rest;
}

describe('file serving', () => {
  let stack: Stack;
  let dataDir: string;
  const data = randomBytes(SIZE);
  beforeAll(async () => {
    stack = await startStack({ name: 'files', worker: false });
    dataDir = realpathSync(stack.dataDir);
    await stack.api.storage.put(KEY, data);
    // a write in progress, under a name a file URL would use
    await mkdir(path.join(dataDir, 'files', TEMPORARY_DIR), { recursive: true });
    await writeFile(path.join(dataDir, 'files', TEMPORARY_DIR, 'original.png'), 'partial');
  });
  afterAll(() => stack.close());

  describe.each([
    ['local files (sendFile)', (s: Storage) => s, true],
    ['a backend without local files (ranged reads)', withoutLocalPaths, true],
    ['a backend with plain streams only', streamsOnly, false],
  ])('%s', (_name, wrap, ranges) => {
    let original: Storage;
    beforeAll(() => {
      original = stack.api.storage;
      stack.api.storage = wrap(original);
    });
    afterAll(() => {
      stack.api.storage = original;
    });

    it(`${ABORTS} downloads aborted mid-body leave no descriptor open`, async () => {
      const before = fdsUnder(dataDir);
      const partial: number[] = [];
      for (let i = 0; i < ABORTS; i++) partial.push((await abortedDownload(stack.baseUrl, `/files/${KEY}`)).bodyBytes);
      // every client really went away mid-body
      expect(Math.max(...partial)).toBeLessThan(SIZE);
      const after = await settledFds(dataDir, before);
      process.stdout.write(`[files] ${_name}: descriptors under DATA_DIR before ${before}, after ${ABORTS} aborted downloads ${after}\n`);
      expect(after).toBe(before);
      // and the server still serves the whole file afterwards
      const whole = await get(stack.baseUrl, `/files/${KEY}`);
      expect(whole.status).toBe(200);
      expect(whole.body.equals(data)).toBe(true);
      expect(await settledFds(dataDir, before)).toBe(before);
    });

    it('answers a plain GET with the bytes, the content type and immutable caching', async () => {
      const res = await get(stack.baseUrl, `/files/${KEY}`);
      expect(res.status).toBe(200);
      expect(res.headers).toMatchObject({
        'content-type': 'image/png',
        'content-length': String(SIZE),
        'cache-control': 'public, max-age=2592000, immutable',
        'x-content-type-options': 'nosniff',
      });
      expect(res.headers.etag).toMatch(/^(W\/)?"[^"]+"$/);
      expect(Number.isNaN(Date.parse(String(res.headers['last-modified'])))).toBe(false);
      expect(res.body.equals(data)).toBe(true);
    });

    it('answers 304 to a GET with the ETag it gave', async () => {
      const first = await get(stack.baseUrl, `/files/${KEY}`);
      const second = await get(stack.baseUrl, `/files/${KEY}`, { 'If-None-Match': String(first.headers.etag) });
      expect(second.status).toBe(304);
      expect(second.body.length).toBe(0);
      expect(second.headers.etag).toBe(first.headers.etag);
      const stale = await get(stack.baseUrl, `/files/${KEY}`, { 'If-None-Match': '"something-else"' });
      expect(stale.status).toBe(200);
    });

    it('compares validators strongly (If-Match, If-Range), and lets a page of any origin read every answer', async () => {
      const first = await get(stack.baseUrl, `/files/${KEY}`);
      const etag = String(first.headers.etag);
      // a file never changes: its validator is strong (before: local files had a weak one, W/"…")
      expect(etag).toMatch(/^"[^"]+"$/);
      expect((await get(stack.baseUrl, `/files/${KEY}`, { 'If-Match': etag })).status).toBe(200);
      // a weak tag never matches If-Match (before: local files answered 200)
      expect((await get(stack.baseUrl, `/files/${KEY}`, { 'If-Match': `W/${etag}` })).status).toBe(412);
      expect((await get(stack.baseUrl, `/files/${KEY}`, { 'If-Match': '"other"' })).status).toBe(412);
      if (ranges) {
        expect((await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9', 'If-Range': etag })).status).toBe(206);
        // nor If-Range: the whole file (before: local files answered 206)
        const weak = await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-9', 'If-Range': `W/${etag}` });
        expect([weak.status, weak.body.length]).toEqual([200, SIZE]);
      }
      // before: no CORS header, so a web app elsewhere could show the image but not read it
      expect(first.headers['access-control-allow-origin']).toBe('*');
      // a conditional or ranged read from another origin is asked leave for first (a preflight), and given it
      const preflight = await get(stack.baseUrl, `/files/${KEY}`, { Origin: 'https://app.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'if-none-match, range' }, 'OPTIONS');
      expect([preflight.status, preflight.headers['access-control-allow-origin']]).toEqual([204, '*']);
      expect(String(preflight.headers['access-control-allow-headers'])).toMatch(/If-None-Match/);
      expect(String(preflight.headers['access-control-allow-headers'])).toMatch(/Range/);
      expect((await get(stack.baseUrl, '/files/nosuchtokennosuchtokennosuchto/original.png')).headers['access-control-allow-origin']).toBe('*');
    });

    it('answers HEAD with the headers and no body', async () => {
      const res = await get(stack.baseUrl, `/files/${KEY}`, {}, 'HEAD');
      expect(res.status).toBe(200);
      expect(res.headers).toMatchObject({ 'content-type': 'image/png', 'content-length': String(SIZE), 'x-content-type-options': 'nosniff' });
      expect(res.headers.etag).toBeTruthy();
      expect(res.body.length).toBe(0);
    });

    it(ranges ? 'answers a Range request with 206 and exactly those bytes' : 'answers a Range request with the whole file, saying it takes no ranges', async () => {
      if (!ranges) {
        const res = await get(stack.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-0' });
        expect([res.status, res.headers['accept-ranges'], res.body.length]).toEqual([200, 'none', SIZE]);
        return;
      }
      for (const [range, start, end] of [
        ['bytes=1000-1999', 1000, 1999],
        ['bytes=0-0', 0, 0],
        [`bytes=${SIZE - 500}-`, SIZE - 500, SIZE - 1],
        ['bytes=-300', SIZE - 300, SIZE - 1],
      ] as const) {
        const res = await get(stack.baseUrl, `/files/${KEY}`, { Range: range });
        expect([range, res.status]).toEqual([range, 206]);
        expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${SIZE}`);
        expect(res.headers['content-length']).toBe(String(end - start + 1));
        expect(res.body.equals(data.subarray(start, end + 1))).toBe(true);
      }
      const unsatisfiable = await get(stack.baseUrl, `/files/${KEY}`, { Range: `bytes=${SIZE + 10}-` });
      expect(unsatisfiable.status).toBe(416);
      expect(unsatisfiable.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(unsatisfiable.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(unsatisfiable.headers['cache-control']).toBeUndefined();
      expect(JSON.parse(unsatisfiable.body.toString()).type).toBe('https://imagegen.dev/problems/range-not-satisfiable');
      // the problem keeps what every answer carries (before: every header gone but the problem's own)
      const traced = await get(stack.baseUrl, `/files/${KEY}`, { Range: `bytes=${SIZE + 10}-`, 'X-Request-Id': 'files-416' });
      expect([traced.status, traced.headers['x-request-id'], typeof traced.headers['content-security-policy'], traced.headers['x-content-type-options']]).toEqual([416, 'files-416', 'string', 'nosniff']);
      // and the API reference says so
      const doc = JSON.parse((await get(stack.baseUrl, '/openapi.json')).body.toString()) as { paths: Record<string, { get: { responses: Record<string, unknown> } }> };
      expect(Object.keys(doc.paths['/files/{token}/{name}']!.get.responses).sort()).toEqual(['200', '206', '304', '404', '405', '412', '416', '503']);
    });

    it('answers unknown, malformed and hidden paths with a 404 problem', async () => {
      const probes = [
        `/files/${TOKEN}/missing.png`,
        `/files/${TOKEN}x/original.png`,
        `/files/${TOKEN}/.original.png`,
        `/files/.${TOKEN}/original.png`,
        `/files/${TEMPORARY_DIR}/original.png`,
        `/files/${TOKEN}/..%2F${TEMPORARY_DIR}%2Foriginal.png`,
        `/files/${TOKEN}/..%2F..%2Fetc%2Fpasswd`,
        `/files/..%2F${TOKEN}/original.png`,
        `/files/${TOKEN}/original.png%00.png`,
      ];
      for (const probe of probes) {
        const res = await get(stack.baseUrl, probe);
        expect([probe, res.status, res.headers['content-type']]).toEqual([probe, 404, 'application/problem+json; charset=utf-8']);
        expect(res.headers['cache-control']).toBeUndefined();
        expect(JSON.parse(res.body.toString())).toMatchObject({ status: 404, title: 'Not found' });
      }
    });
  });
});

describe('file downloads dropped before their answer', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'files-dropped', worker: false });
    await stack.api.storage.put(KEY, randomBytes(SIZE));
  });
  afterAll(async () => {
    await killAllSpawned();
    await stack?.close();
  });

  it('are not logged as errors of the API', async () => {
    const api = await spawnApi({ name: 'api-files', env: { ...stack.env, PORT: '', LOG_LEVEL: 'info' } });
    const { hostname, port } = new URL(api.baseUrl);
    // each client goes away a moment after asking, many before the answer starts
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        new Promise<void>((resolve) => {
          const req = http.get({ hostname, port, path: `/files/${KEY}` });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
          // once the request is out: while the API looks the file up
          req.on('finish', () => setTimeout(() => req.destroy(), i % 3));
        }),
      ),
    );
    await sleep(500);
    expect((await get(api.baseUrl, `/files/${KEY}`, { Range: 'bytes=0-3' })).status).toBe(206);
    // before: many logged as "unhandled error" (Request aborted) at level error
    expect(api.logs().filter((l) => l.msg === 'unhandled error')).toEqual([]);
  });
});
