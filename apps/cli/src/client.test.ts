import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ApiClient, CliError } from './client';
import { download } from './download';
import { retrying } from './retry';

const fast = { giveUpAfterMs: 2000, firstDelayMs: 5, maxDelayMs: 20 };
const okSchema = z.object({ ok: z.boolean() });
let server: Server;
let base: string;
/** What the server answers next, per path: the first answer is taken, the last one repeats. */
const answers = new Map<string, { status: number; headers?: Record<string, string>; body?: string }[]>();
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    const queue = answers.get(req.url ?? '') ?? [{ status: 404 }];
    const a = queue.length > 1 ? queue.shift()! : queue[0]!;
    res.writeHead(a.status, { 'Content-Type': a.status < 300 ? 'application/octet-stream' : 'application/problem+json', ...a.headers });
    res.end(a.body ?? (a.status < 300 ? 'bytes' : JSON.stringify({ status: a.status, detail: `answered ${a.status}` })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  answers.clear();
  seen.length = 0;
});

it('a 409 with Retry-After (the same request still being handled) is tried again; one without it is final', async () => {
  const client = new ApiClient({ url: base });
  answers.set('/busy', [{ status: 409, headers: { 'Retry-After': '1' } }, { status: 200, body: '{"ok":true}' }]);
  expect(await retrying(() => client.json('/busy', okSchema), undefined, fast)).toEqual({ ok: true });
  answers.set('/conflict', [{ status: 409 }]);
  await expect(retrying(() => client.json('/conflict', okSchema), undefined, fast)).rejects.toMatchObject({ retryable: false, status: 409 });
  expect(seen).toEqual(['/busy', '/busy', '/conflict']);
});

it('an API address whose host does not exist is reported at once; one that refuses connections is tried again', async () => {
  const notices: string[] = [];
  const unknown = new ApiClient({ url: 'http://no-such-host.invalid:3000' });
  // before: tried again for five minutes
  await expect(retrying(() => unknown.json('/v1/generations', okSchema), undefined, fast, undefined, (err) => notices.push(err.message))).rejects.toMatchObject({
    retryable: false,
    message: 'Cannot reach the imagegen API at http://no-such-host.invalid:3000 (no such host); check IMAGEGEN_URL or --url',
  });
  expect(notices).toEqual([]);
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  const refused = new ApiClient({ url: `http://127.0.0.1:${port}` });
  await expect(refused.json('/v1/generations', okSchema)).rejects.toMatchObject({ retryable: true, message: expect.stringContaining('(ECONNREFUSED)') });
});

it('a download that cannot be written is not tried again and leaves no partial file; one the server fails is', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-cli-dl-'));
  try {
    answers.set('/img', [{ status: 200 }]);
    const err = await retrying(() => download(`${base}/img`, path.join(dir, 'missing-folder', 'a.png')), undefined, fast).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ retryable: false, message: expect.stringMatching(/^Cannot write .*a\.png: ENOENT/) });
    expect(seen).toEqual(['/img']);

    answers.set('/flaky', [{ status: 503 }, { status: 503 }, { status: 200 }]);
    await retrying(() => download(`${base}/flaky`, path.join(dir, 'b.png')), undefined, fast);
    expect(seen.filter((s) => s === '/flaky')).toHaveLength(3);
    expect(await readdir(dir)).toEqual(['b.png']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('lists the first hundred of the errors a problem names, then counts the rest', async () => {
  const client = new ApiClient({ url: base });
  const errors = Array.from({ length: 130 }, (_, i) => ({ path: `${i}.style`, message: 'must be one of PHOTOGRAPHIC, VECTOR_IMAGE, ILLUSTRATION, 3D' }));
  answers.set('/v1/batches', [{ status: 400, body: JSON.stringify({ status: 400, detail: '130 items are invalid; nothing was enqueued', errors }) }]);
  const err = (await client.json('/v1/batches', z.unknown()).catch((e: unknown) => e)) as CliError;
  const lines = err.message.split('\n');
  expect(lines[0]).toBe('130 items are invalid; nothing was enqueued');
  expect(lines).toHaveLength(1 + 100 + 1);
  expect(lines[100]).toBe('  99.style: must be one of PHOTOGRAPHIC, VECTOR_IMAGE, ILLUSTRATION, 3D');
  expect(lines[101]).toBe('  and 30 more');
});

it('an answer that is not what the API answers is reported as such, naming what is wrong, not used', async () => {
  const client = new ApiClient({ url: base });
  answers.set('/odd', [{ status: 200, body: '{"ok":"yes"}' }]);
  const err = (await client.json('/odd', okSchema).catch((e: unknown) => e)) as CliError;
  expect(err).toBeInstanceOf(CliError);
  expect(err.message).toBe(`${base} (/odd) answered something that is not what the imagegen API answers (ok: Invalid input: expected boolean, received string); check IMAGEGEN_URL or --url`);
  answers.set('/html', [{ status: 200, body: '<html>' }]);
  expect(((await client.json('/html', okSchema).catch((e: unknown) => e)) as CliError).message).toMatch(/\(\/html\) answered something that is not what the imagegen API answers \(\(body\): /);
});

it('refuses an API address with a user or password, and never prints it', () => {
  const err = (() => {
    try {
      new ApiClient({ url: 'http://me:hunter2@127.0.0.1:3000' });
    } catch (e) {
      return e as Error;
    }
    return undefined;
  })();
  expect(err).toBeInstanceOf(CliError);
  expect(err?.message).not.toContain('hunter2');
  expect(() => new ApiClient({ url: 'not a url with hunter2' })).toThrow(/^IMAGEGEN_URL \(or --url\) is not a URL/);
});

it('refuses an API address that is not http(s) at once, rather than try it for minutes', () => {
  // `localhost:3000` parses as a URL of the scheme `localhost:` (before: "fetch failed", tried again and again)
  for (const url of ['localhost:3000', 'ftp://127.0.0.1/', 'file:///tmp/x']) {
    expect(() => new ApiClient({ url })).toThrow('IMAGEGEN_URL (or --url) must start with http:// or https:// (e.g. http://localhost:3000)');
  }
  expect(new ApiClient({ url: 'https://imagegen.example/' }).base).toBe('https://imagegen.example');
});

it('a failed download names the file without its query (a signed URL carries its signature there)', async () => {
  answers.set('/signed.png?X-Amz-Signature=SECRETSIG', [{ status: 403 }]);
  const err = (await download(`${base}/signed.png?X-Amz-Signature=SECRETSIG`, path.join(os.tmpdir(), 'never.png')).catch((e: unknown) => e)) as Error;
  expect(err.message).toBe(`Cannot download ${base}/signed.png: 403`);
});
