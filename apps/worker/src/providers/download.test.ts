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
