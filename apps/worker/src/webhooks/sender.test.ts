import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { WebhookSender } from './sender';

const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
let server: Server;
let port: number;
let connections = 0;
const seen: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      // a receiver that never answers
      if (req.url === '/hang') return;
      if (req.url === '/drip') {
        // answers at once, then never finishes the body
        res.writeHead(200);
        const drip = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(drip));
        return;
      }
      if (req.url === '/busy') return res.writeHead(503, { 'Retry-After': '7' }).end();
      // Retry-After values that are neither delta-seconds nor an HTTP date
      if (req.url?.startsWith('/busy-junk/')) return res.writeHead(503, { 'Retry-After': decodeURIComponent(req.url.slice('/busy-junk/'.length)) }).end();
      if (req.url === '/busy-asctime') return res.writeHead(503, { 'Retry-After': 'Sun Nov  6 08:49:37 2101' }).end();
      if (req.url === '/moved') return res.writeHead(302, { Location: '/ok' }).end();
      // an answer far longer than the sender reads
      if (req.url === '/long') return res.writeHead(200).end('x'.repeat(1024 * 1024));
      res.writeHead(204).end();
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

it('signs per Standard Webhooks: a receiver verifies the body with the secret', async () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 2 });
  const body = JSON.stringify({ type: 'generation.completed', timestamp: new Date().toISOString(), data: { id: 'gen_1' } });
  const result = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_1', body, secrets: [secret] });
  await sender.close();
  expect(result).toMatchObject({ ok: true, status: 204 });
  const got = seen.at(-1)!;
  expect(got.body).toBe(body);
  expect(new Webhook(secret).verify(got.body, got.headers as Record<string, string>)).toEqual(JSON.parse(body));
});

it('signs the time it is given (Redis time), not this host clock', async () => {
  const ahead = 10 * 60_000;
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 1, now: () => Date.now() + ahead });
  const result = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_clock', body: '{}', secrets: [secret] });
  await sender.close();
  expect(result.ok).toBe(true);
  const stamped = Number(seen.at(-1)!.headers['webhook-timestamp']) * 1000;
  expect(Math.abs(stamped - (Date.now() + ahead))).toBeLessThan(5000);
  // and the signature covers that time: a receiver checks it against its own clock
  expect(() => new Webhook(secret).verify('{}', seen.at(-1)!.headers as Record<string, string>)).toThrow(/timestamp/i);
});

it('with the guard on, a name resolving to loopback is refused at connect time, and nothing is sent', async () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: false, connectionsPerOrigin: 2 });
  const before = seen.length;
  const byName = await sender.send({ url: `http://localhost:${port}/x`, webhookId: 'msg_2', body: '{}', secrets: [secret] });
  const byAddress = await sender.send({ url: `http://[::ffff:127.0.0.1]:${port}/x`, webhookId: 'msg_3', body: '{}', secrets: [secret] });
  await sender.close();
  expect(byName).toMatchObject({ ok: false, hostTrouble: false, refused: true, error: expect.stringMatching(/loopback/) });
  expect(byAddress).toMatchObject({ ok: false, hostTrouble: false, refused: true, error: expect.stringMatching(/loopback/) });
  expect(seen.length).toBe(before);
});

it('signatures are byte for byte those of the Standard Webhooks library, for every secret that signs', () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 1 });
  const other = `whsec_${Buffer.alloc(24, 3).toString('base64')}`;
  const at = new Date('2025-03-01T12:00:00.987Z');
  for (const body of ['{}', JSON.stringify({ topic: 'café — 東京 🌅', n: 1 }), 'x'.repeat(70_000)]) {
    const expected = [secret, other].map((s) => new Webhook(s).sign('msg_abc', at, body)).join(' ');
    expect(sender.sign([secret, other], 'msg_abc', at, body)).toBe(expected);
  }
  void sender.close();
});

it('a request without an answer is cut at the timeout, and its connection is not left to it', async () => {
  const sender = new WebhookSender({ timeoutMs: 300, allowPrivate: true, connectionsPerOrigin: 1 });
  const started = Date.now();
  const hung = await sender.send({ url: `http://127.0.0.1:${port}/hang`, webhookId: 'msg_4', body: '{}', secrets: [secret] });
  expect(hung).toMatchObject({ ok: false, hostTrouble: true, error: expect.stringMatching(/timed out/) });
  expect(Date.now() - started).toBeLessThan(2000);
  // the only connection was aborted with it: the next request goes through
  const next = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_5', body: '{}', secrets: [secret] });
  expect(next).toMatchObject({ ok: true, status: 204 });
  await sender.close();
});

it('says what a failure means: Retry-After is read, a redirect is not followed', async () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 2 });
  const before = seen.length;
  const busy = await sender.send({ url: `http://127.0.0.1:${port}/busy`, webhookId: 'msg_6', body: '{}', secrets: [secret] });
  const moved = await sender.send({ url: `http://127.0.0.1:${port}/moved`, webhookId: 'msg_7', body: '{}', secrets: [secret] });
  await sender.close();
  expect(busy).toMatchObject({ ok: false, status: 503, retryAfterMs: 7000, hostTrouble: true });
  expect(moved).toMatchObject({ ok: false, status: 302, hostTrouble: false, error: expect.stringMatching(/redirects are not followed/) });
  // the redirect's target was never asked
  expect(seen.slice(before).map((s) => s.headers['webhook-id'])).toEqual(['msg_6', 'msg_7']);
});

it('a Retry-After that is neither seconds nor an HTTP date is ignored, whatever year it mentions', async () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 2 });
  const send = (path: string) => sender.send({ url: `http://127.0.0.1:${port}${path}`, webhookId: 'msg_ra', body: '{}', secrets: [secret] });
  const junk = await Promise.all(['garbage 2099', 'soon, 2099', 'Retry 2030', '-5', 'Mon 3'].map((v) => send(`/busy-junk/${encodeURIComponent(v)}`)));
  // an HTTP date in any of the three forms HTTP allows is still read
  const asctime = await send('/busy-asctime');
  await sender.close();
  // before: 'garbage 2099', 'soon, 2099' and 'Retry 2030' were read as dates decades ahead, holding retries back by the cap (10 h)
  expect(junk.map((r) => [r.status, r.retryAfterMs])).toEqual(Array.from({ length: 5 }, () => [503, undefined]));
  expect(asctime.retryAfterMs).toBeGreaterThan(50 * 365 * 24 * 3600_000);
});

it('a 2xx with a long body counts as delivered; the connection is dropped rather than read to the end', async () => {
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 1 });
  const opened = connections;
  const long = await sender.send({ url: `http://127.0.0.1:${port}/long`, webhookId: 'msg_8', body: '{}', secrets: [secret] });
  const next = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_9', body: '{}', secrets: [secret] });
  await sender.close();
  expect(long).toMatchObject({ ok: true, status: 200 });
  expect(next).toMatchObject({ ok: true, status: 204 });
  // one keep-alive connection would have carried both had the megabyte been read
  expect(connections - opened).toBe(2);
});

it('a 2xx whose body never ends is delivered, and its connection is dropped at the deadline', async () => {
  const sender = new WebhookSender({ timeoutMs: 400, allowPrivate: true, connectionsPerOrigin: 1 });
  const dripping = await sender.send({ url: `http://127.0.0.1:${port}/drip`, webhookId: 'msg_10', body: '{}', secrets: [secret] });
  expect(dripping).toMatchObject({ ok: true, status: 200 });
  await new Promise((resolve) => setTimeout(resolve, 600));
  // the only connection was not kept by the endless body
  const next = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_11', body: '{}', secrets: [secret] });
  expect(next).toMatchObject({ ok: true, status: 204 });
  const closing = Date.now();
  await sender.close();
  expect(Date.now() - closing).toBeLessThan(1000);
});

it('requests waiting for a connection past their deadline are dropped, never sent and never given one', async () => {
  const sender = new WebhookSender({ timeoutMs: 300, allowPrivate: true, connectionsPerOrigin: 2 });
  const before = seen.length;
  const opened = connections;
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sender.send({ url: `http://127.0.0.1:${port}/hang`, webhookId: `msg_q${i}`, body: '{}', secrets: [secret] })));
  expect(Date.now() - started).toBeLessThan(1500);
  expect(results.every((r) => !r.ok && /timed out/.test(r.error ?? ''))).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await sender.close();
  // the two that had connections were sent; the 38 that waited were not, and opened none (the pool
  // replaces each aborted connection once, so two aborted requests account for up to four)
  expect(seen.length - before).toBe(2);
  expect(connections - opened).toBeLessThanOrEqual(4);
});

it('a request the sender itself refuses is not held against the host', async () => {
  const sender = new WebhookSender({ timeoutMs: 1000, allowPrivate: true, connectionsPerOrigin: 1 });
  const unsigned = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_12', body: '{}', secrets: [] });
  const badHeader = await sender.send({ url: `http://127.0.0.1:${port}/ok`, webhookId: 'msg_13\r\nx-injected: 1', body: '{}', secrets: [secret] });
  await sender.close();
  expect(unsigned).toMatchObject({ ok: false, hostTrouble: false });
  expect(badHeader).toMatchObject({ ok: false, hostTrouble: false });
});

// a listener that never accepts (its process's event loop is blocked) with its backlog full: connects get no answer
const NEVER_ACCEPTS = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  console.log(server.address().port);
  setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000), 50);
});
`;

it('the deadline holds while a request waits for a connection that never comes', async () => {
  const child = spawn(process.execPath, ['-e', NEVER_ACCEPTS], { stdio: ['ignore', 'pipe', 'inherit'] });
  let fill: Socket[] = [];
  try {
    const silentPort = Number(await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
    await new Promise((resolve) => setTimeout(resolve, 200));
    fill = Array.from({ length: 8 }, () => connect(silentPort, '127.0.0.1').on('error', () => undefined));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sender = new WebhookSender({ timeoutMs: 400, allowPrivate: true, connectionsPerOrigin: 1 });
    const startedAt = Date.now();
    const result = await sender.send({ url: `http://127.0.0.1:${silentPort}/x`, webhookId: 'msg_20', body: '{}', secrets: [secret] });
    // at the deadline, not whenever the pool's own (coarser) connect timeout fires
    expect(result).toMatchObject({ ok: false, hostTrouble: true, error: expect.stringMatching(/timed out/) });
    expect(Date.now() - startedAt).toBeLessThan(600);
    await sender.close();
  } finally {
    for (const socket of fill) socket.destroy();
    child.kill('SIGKILL');
  }
});

it('says how a connection failed, in undici words and code: closed before an answer, or an answer it cannot take', async () => {
  // a raw server: one request closed unanswered, the other answered with a 100 Continue nobody asked for
  const raw = (answer: (socket: Socket) => void) =>
    new Promise<{ url: string; close: () => void }>((resolve) => {
      const s = createTcpServer((socket) => socket.once('data', () => answer(socket)));
      s.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/x`, close: () => s.close() }));
    });
  const closing = await raw((socket) => socket.destroy());
  const continuing = await raw((socket) => socket.write('HTTP/1.1 100 Continue\r\n\r\n'));
  const sender = new WebhookSender({ timeoutMs: 2000, allowPrivate: true, connectionsPerOrigin: 1 });
  const closed = await sender.send({ url: closing.url, webhookId: 'msg_closed', body: '{}', secrets: [secret] });
  const continued = await sender.send({ url: continuing.url, webhookId: 'msg_continue', body: '{}', secrets: [secret] });
  await sender.close();
  closing.close();
  continuing.close();
  // before: 'connection failed: UND_ERR_SOCKET' for both
  expect(closed).toMatchObject({ ok: false, error: 'connection failed: other side closed (UND_ERR_SOCKET)', hostTrouble: true });
  expect(continued).toMatchObject({ ok: false, error: 'connection failed: bad response (UND_ERR_SOCKET)', hostTrouble: true });
});
