import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import zlib from 'node:zlib';
import express from 'express';
import fc from 'fast-check';
import { createLogger } from '@imagegen/shared';
import { errorHandler } from '../http/problem';
import { MAX_NESTING, readJsonBody } from './json-body';

const LIMIT = 64 * 1024;

interface Reply {
  status: number;
  type: string;
  text: string;
}

/** Every read's outcome on the server side, to see how it ended for a client that left. */
const outcomes: { value?: unknown; error?: { type?: string } }[] = [];
let server: http.Server;
let port: number;

beforeAll(async () => {
  const app = express();
  app.post('/', async (req, res) => {
    try {
      const value = await readJsonBody(req, LIMIT);
      outcomes.push({ value });
      res.json({ value: value === undefined ? '(no body)' : value });
    } catch (error) {
      outcomes.push({ error: error as { type?: string } });
      throw error;
    }
  });
  app.use(errorHandler(createLogger('test', 'silent')));
  server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** POSTs `body` in pieces of `piece` bytes (all at once when 0). */
function post(body: Buffer | string, headers: Record<string, string> = {}, piece = 0): Promise<Reply> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ port, method: 'POST', path: '/', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
    });
    req.on('error', reject);
    if (piece <= 0) req.end(bytes);
    else {
      for (let at = 0; at < bytes.length; at += piece) req.write(bytes.subarray(at, at + piece));
      req.end();
    }
  });
}

const valueOf = (r: Reply) => JSON.parse(r.text).value as unknown;

it('reads any JSON text as JSON.parse does, however the bytes are split', async () => {
  await fc.assert(
    fc.asyncProperty(fc.json({ maxDepth: 4, stringUnit: 'binary' }), fc.constantFrom(' ', '\n\t ', ''), fc.integer({ min: 0, max: 7 }), async (text, pad, piece) => {
      const res = await post(`${pad}${text}${pad}`, {}, piece);
      expect(res.status).toBe(200);
      expect(JSON.stringify(valueOf(res))).toBe(JSON.stringify(JSON.parse(text)));
    }),
    { numRuns: 150 },
  );
});

it('refuses with 400 exactly what JSON.parse refuses', async () => {
  const nearlyJson = fc.json({ maxDepth: 2 }).chain((t) => fc.tuple(fc.nat(t.length), fc.string({ maxLength: 3 })).map(([at, s]) => t.slice(0, at) + s + t.slice(at + s.length)));
  await fc.assert(
    fc.asyncProperty(fc.oneof(nearlyJson, fc.string({ maxLength: 20 })), async (text) => {
      fc.pre(text.length > 0);
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const res = await post(text, {}, 3);
      expect(res.status).toBe(parses ? 200 : 400);
      if (!parses) expect(res.type).toMatch(/application\/problem\+json/);
    }),
    { numRuns: 200 },
  );
});

it('reads an empty body as {} and a byte order mark as nothing', async () => {
  expect(valueOf(await post(''))).toEqual({});
  expect(valueOf(await post('\ufeff{"a":1}'))).toEqual({ a: 1 });
});

it('keeps characters split across pieces whole, in utf-8 and utf-16', async () => {
  const doc = { topic: 'lighthouse — 灯台 🌊 at dusk', metadata: { é: 'ü' } };
  expect(valueOf(await post(JSON.stringify(doc), {}, 1))).toEqual(doc);
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(doc), 'utf16le')]);
  expect(valueOf(await post(utf16, { 'content-type': 'application/json; charset=utf-16le' }, 3))).toEqual(doc);
});

it('refuses bytes that are not UTF-8 with 400, wherever they fall, rather than reading them as U+FFFD', async () => {
  const good = Buffer.from(JSON.stringify({ items: [{ topic: 'café' }] }));
  const at = good.indexOf(Buffer.from('é'));
  // é in Latin-1, a lone continuation byte, a sequence cut short, an overlong '/', a UTF-16 surrogate in UTF-8
  for (const bad of [[0xe9], [0x80], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const body = Buffer.concat([good.subarray(0, at), Buffer.from(bad), good.subarray(at + 2)]);
    for (const piece of [0, 1, 5]) {
      const res = await post(body, {}, piece);
      expect({ bad, piece, status: res.status, type: res.type }).toEqual({ bad, piece, status: 400, type: expect.stringMatching(/application\/problem\+json/) });
      expect(JSON.parse(res.text).errors).toEqual([{ path: '(body)', message: 'is not valid UTF-8' }]);
    }
  }
  expect(outcomes.at(-1)?.error?.type).toBe('charset.invalid');
  // the same character whole, split across pieces or not, is read
  for (const piece of [0, 1, 5]) expect(valueOf(await post(good, {}, piece))).toEqual({ items: [{ topic: 'café' }] });
});

it('inflates gzip, deflate and brotli bodies, and refuses unknown encodings and charsets with 415', async () => {
  const text = JSON.stringify({ items: [{ topic: 'x' }] });
  for (const [encoding, pack] of [['gzip', zlib.gzipSync], ['deflate', zlib.deflateSync], ['br', zlib.brotliCompressSync]] as const) {
    expect(valueOf(await post(pack(text), { 'content-encoding': encoding }))).toEqual({ items: [{ topic: 'x' }] });
  }
  expect((await post(text, { 'content-encoding': 'compress' })).status).toBe(415);
  expect((await post(text, { 'content-type': 'application/json; charset=latin1' })).status).toBe(415);
  expect((await post(zlib.gzipSync(text).subarray(0, 20), { 'content-encoding': 'gzip' })).status).toBe(400);
});

it('answers 413 over the limit, whether the length is declared, streamed or inflated', async () => {
  const big = JSON.stringify({ items: Array.from({ length: 3000 }, (_, i) => ({ topic: `topic ${i}` })) });
  expect(Buffer.byteLength(big)).toBeGreaterThan(LIMIT);
  const declared = await post(big);
  expect(declared.status).toBe(413);
  expect(declared.type).toMatch(/application\/problem\+json/);
  expect((await post(big, { 'transfer-encoding': 'chunked' }, 4096)).status).toBe(413);
  expect((await post(zlib.gzipSync(big), { 'content-encoding': 'gzip' })).status).toBe(413);
  const atLimit = JSON.stringify({ pad: 'x'.repeat(LIMIT - 10) });
  expect(Buffer.byteLength(atLimit)).toBe(LIMIT);
  expect((await post(atLimit, { 'transfer-encoding': 'chunked' }, 1000)).status).toBe(200);
});

it('refuses nesting deeper than any batch can be, and reads it up to there', async () => {
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  expect((await post(nested(MAX_NESTING))).status).toBe(200);
  const deep = await post(nested(MAX_NESTING + 1));
  expect(deep.status).toBe(400);
  expect(JSON.parse(deep.text).detail).toMatch(/nests too deeply/);
});

it('lets the event loop run many times while a large body is parsed', async () => {
  const body = Buffer.from(JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ topic: `a lighthouse ${i}`, metadata: { row: i } })) }));
  const app = express();
  let turns = 0;
  app.post('/', async (req, res) => {
    let reading = true;
    void (async () => {
      while (reading) {
        turns++;
        await yieldToLoop();
      }
    })();
    const value = (await readJsonBody(req, body.length)) as { items: unknown[] };
    reading = false;
    res.json({ n: value.items.length });
  });
  const local = http.createServer(app);
  await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(await res.json()).toEqual({ n: 20_000 });
    // at least one turn per 16 KiB piece: never one long synchronous parse
    expect(turns).toBeGreaterThanOrEqual(Math.floor(body.length / (16 * 1024)));
  } finally {
    await new Promise((resolve) => local.close(resolve));
  }
});

it('stops reading at once when the client goes away mid-upload', async () => {
  const before = outcomes.length;
  const socket = await new Promise<import('node:net').Socket>((resolve) => {
    const req = http.request({ port, agent: false, method: 'POST', path: '/', headers: { 'content-type': 'application/json', 'content-length': String(LIMIT - 1) } });
    req.on('error', () => undefined);
    req.write('{"items":[{"topic":"half');
    req.on('socket', (s) => s.on('connect', () => setTimeout(() => resolve(s), 100)));
  });
  socket.destroy();
  for (let i = 0; i < 100 && outcomes.length === before; i++) await new Promise((r) => setTimeout(r, 20));
  expect(outcomes.slice(before)).toEqual([{ error: expect.objectContaining({ type: 'request.aborted' }) }]);
  expect(valueOf(await post('{"still":"answering"}'))).toEqual({ still: 'answering' });
});
