import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { downloadImage } from './download';

let server: http.Server;
let port: number;
/** Authorization header and path of every request the file host got. */
const seen: { authorization?: string; path?: string }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ authorization: req.headers.authorization, path: req.url });
    if (req.headers.authorization !== `Basic ${Buffer.from('user:pa55 word').toString('base64')}`) return void res.writeHead(401).end();
    res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.from('png bytes'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server.close());

it('a URL with credentials in it is downloaded with them as Basic authentication, its path and query kept', async () => {
  const got = await downloadImage(`http://user:pa55%20word@127.0.0.1:${port}/img.png?X-Amz-Signature=SIG`, { signal: new AbortController().signal, timeoutMs: 5000, maxBytes: 1000 });
  // before: fetch refused the URL, every attempt failed, and the message quoted the password
  expect(got.data.toString()).toBe('png bytes');
  expect(seen.at(-1)).toEqual({ authorization: `Basic ${Buffer.from('user:pa55 word').toString('base64')}`, path: '/img.png?X-Amz-Signature=SIG' });
});

it('a URL without credentials sends no Authorization header', async () => {
  await expect(downloadImage(`http://127.0.0.1:${port}/plain.png`, { signal: new AbortController().signal, timeoutMs: 5000, maxBytes: 1000 })).rejects.toMatchObject({ code: 'download_failed' });
  expect(seen.at(-1)).toEqual({ authorization: undefined, path: '/plain.png' });
});

describe('redirects', () => {
  let hosts: http.Server[] = [];
  /** Authorization header and path of every request either redirecting host got. */
  const got: { host: string; authorization?: string; path?: string }[] = [];
  let a: string;
  let b: string;
  const opts = () => ({ signal: new AbortController().signal, timeoutMs: 5000, maxBytes: 1000 });

  beforeAll(async () => {
    const serve = (name: string) =>
      http.createServer((req, res) => {
        got.push({ host: name, authorization: req.headers.authorization, path: req.url });
        const to = (location: string) => void res.writeHead(302, { location }).end('moved');
        switch (new URL(req.url ?? '/', 'http://host').pathname) {
          case '/loop':
            return to('/loop');
          case '/file':
            return to('file:///etc/passwd');
          case '/data':
            return to('data:image/png;base64,iVBORw0KGgo=');
          case '/choices':
            return void res.writeHead(300, { location: '/image.png' }).end('pick one');
          case '/chain':
            return to('/chain/2');
          case '/chain/2':
            return to(`${b}/image.png`);
          case '/image.png':
            return void res.writeHead(200, { 'content-type': 'image/png' }).end('png bytes');
          default:
            return void res.writeHead(404).end();
        }
      });
    hosts = [serve('a'), serve('b')];
    const ports = await Promise.all(hosts.map((h) => new Promise<number>((resolve) => h.listen(0, '127.0.0.1', () => resolve((h.address() as AddressInfo).port)))));
    [a, b] = ports.map((p) => `http://127.0.0.1:${p}`) as [string, string];
  });
  afterAll(() => hosts.forEach((h) => h.close()));

  it.each([
    ['a redirect loop', '/loop', /more than 20 times/],
    ['a redirect to file:', '/file', /redirect to a file: URL/],
    ['a redirect to data:', '/data', /redirect to a data: URL/],
  ])('%s fails at once as download_failed, not as a connection error every attempt meets again', async (_name, path, message) => {
    // before: upstream_connection_error, retryable ('redirect count exceeded', 'URL scheme must be a HTTP(S) scheme')
    await expect(downloadImage(`${a}${path}`, opts())).rejects.toMatchObject({ code: 'download_failed', retryable: false, message: expect.stringMatching(message) });
  });

  it('a 3xx that fetch does not follow (300 Multiple Choices) is the answer, not a redirect', async () => {
    // before: followed to the image, unlike fetch
    await expect(downloadImage(`${a}/choices`, opts())).rejects.toMatchObject({ code: 'download_failed' });
  });

  it('follows redirects to the image, its credentials sent to its own origin only', async () => {
    got.length = 0;
    const res = await downloadImage(`http://user:pw@${a.slice('http://'.length)}/chain?sig=1`, opts());
    expect(res.data.toString()).toBe('png bytes');
    const basic = `Basic ${Buffer.from('user:pw').toString('base64')}`;
    expect(got).toEqual([
      { host: 'a', authorization: basic, path: '/chain?sig=1' },
      { host: 'a', authorization: basic, path: '/chain/2' },
      { host: 'b', authorization: undefined, path: '/image.png' },
    ]);
  });
});
