import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GenerationRequest } from '@imagegen/shared';
import { AiStudiosProvider } from './aistudios';
import { OpenAiProvider } from './openai';

/** The image URL the upstream names in its next answers. */
let answerUrl = '';
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    const body = req.url === '/v1/images/generations' ? { created: 1, data: [{ url: answerUrl }] } : { downloadUrl: answerUrl };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

const request: GenerationRequest = { topic: 'a lighthouse', style: 'PHOTOGRAPHIC', size: 'SQUARE' };
const ctx = () => ({ signal: new AbortController().signal });
const providers = () => [
  new AiStudiosProvider({ url: `${base}/generate`, timeoutMs: 5000, maxResponseBytes: 100_000 }),
  new OpenAiProvider({ url: `${base}/v1/images/generations`, apiKey: 'sk-test', model: 'gpt-image-1', timeoutMs: 5000, maxResponseBytes: 100_000, maxImageBytes: 100_000 }),
];

it.each(['http://[::1/img.png', 'https://files example.com/img.png', 'http://', 'https://user:%E0%A4%A@files.example.com/img.png'])('an image URL that is not a URL (%s) is a bad answer that fails at once', async (url) => {
  answerUrl = url;
  for (const provider of providers()) {
    // before: taken, checkpointed, and each attempt's download failed on it as a retryable connection error
    await expect(provider.generate(request, ctx())).rejects.toMatchObject({ code: 'upstream_bad_response', retryable: false });
  }
});

it('a well-formed http(s) image URL is handed on as it is', async () => {
  answerUrl = 'https://user:pw@files.example.com:8443/a/b.png?X-Amz-Signature=SIG';
  for (const provider of providers()) expect(await provider.generate(request, ctx())).toEqual({ kind: 'url', url: answerUrl });
});
