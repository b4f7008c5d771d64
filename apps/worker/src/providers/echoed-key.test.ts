import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AiStudiosProvider } from './aistudios';
import { OpenAiProvider } from './openai';

/** A real upstream that refuses every request, quoting the Authorization header it was sent. */
async function echoingUpstream(status: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `refused: ${req.headers.authorization} may not ask for this size` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/generate`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const request = { topic: 'a lighthouse', style: 'PHOTOGRAPHIC', size: 'SQUARE' } as const;
const ctx = () => ({ signal: new AbortController().signal });

describe('an upstream that quotes the key it was sent', () => {
  it.each([400, 429, 503])('answering %i: the failure every tenant reads does not carry the key', async (status) => {
    const upstream = await echoingUpstream(status);
    try {
      const key = 'GENKEY-zzz-SECRET-777';
      const seed = new AiStudiosProvider({ url: upstream.url, apiKey: key, timeoutMs: 5000, maxResponseBytes: 1 << 20 });
      const openai = new OpenAiProvider({ url: upstream.url, apiKey: key, model: 'gpt-image-1', timeoutMs: 5000, maxResponseBytes: 1 << 20, maxImageBytes: 1 << 20 });
      for (const provider of [seed, openai]) {
        const err = (await provider.generate(request, ctx()).catch((e: unknown) => e)) as Error;
        // before: 'Upstream answered 400: {"error":"refused: GENKEY-zzz-SECRET-777 may not ask for this size"}'
        expect(err.message).toMatch(new RegExp(`^Upstream answered ${status}: .*refused: .*\\[redacted\\] may not ask for this size`));
        expect(err.message).not.toContain('SECRET');
      }
    } finally {
      await upstream.close();
    }
  });
});
