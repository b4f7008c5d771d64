import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { classifyHttpFailure, parseRetryAfter, withDeadline, withoutUrlSecrets } from './http';

it('parses Retry-After as seconds or an HTTP date', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  expect(parseRetryAfter('3', now)).toBe(3000);
  expect(parseRetryAfter('1.5', now)).toBe(1500);
  expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
  expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:10 GMT', now)).toBe(0);
  expect(parseRetryAfter('soon', now)).toBeUndefined();
  // the other two forms of an HTTP date; text that merely mentions a year is no date (Date.parse takes it for 1 January)
  expect(parseRetryAfter('Thursday, 01-Jan-26 00:00:10 GMT', now)).toBe(10_000);
  expect(parseRetryAfter('Thu Jan  1 00:00:10 2026', now)).toBe(10_000);
  expect(parseRetryAfter('soon 2099', now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
});

it.each([
  [429, '', 'upstream_rate_limited', true],
  [408, '', 'upstream_timeout', true],
  [500, '', 'upstream_unavailable', true],
  [502, '', 'upstream_unavailable', true],
  [503, '', 'upstream_unavailable', true],
  [400, '{"error":"bad prompt"}', 'upstream_rejected', false],
  [401, '', 'upstream_unauthorized', false],
  [403, '', 'upstream_unauthorized', false],
  [422, '', 'upstream_rejected', false],
  [400, '{"error":{"code":"content_policy_violation"}}', 'content_policy_violation', false],
  [451, 'blocked by safety system', 'content_policy_violation', false],
  [405, 'Method Not Allowed', 'upstream_rejected', false],
])('%i %s → %s (retryable %s)', (status, body, code, retryable) => {
  const f = classifyHttpFailure(status, new Headers({ 'retry-after': '2' }), body);
  expect({ code: f.code, retryable: f.retryable }).toEqual({ code, retryable });
  if (retryable) expect(f.retryAfterMs).toBe(2000);
});

describe('withDeadline', () => {
  it('reads an answer that came while the process stood still past the deadline, rather than throw it away', async () => {
    const server = http.createServer((_req, res) => setTimeout(() => res.end('{"ok":true}'), 50));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const call = withDeadline(new AbortController().signal, { what: 'Upstream call', timeoutMs: 200 }, async (signal) => (await fetch(`http://127.0.0.1:${port}/`, { signal })).json());
      // the request goes out, then this process stands still (as under SIGSTOP) while the answer arrives
      await new Promise((resolve) => setTimeout(resolve, 20));
      const until = Date.now() + 1500;
      while (Date.now() < until);
      // before: upstream_timeout, and the next attempt paid the upstream again
      expect(await call).toEqual({ ok: true });
    } finally {
      server.close();
    }
  });

  const never = () => new Promise<never>(() => undefined);

  it('rejects on time even when the operation ignores its signal', async () => {
    const t0 = Date.now();
    await expect(withDeadline(new AbortController().signal, { what: 'Upstream call', timeoutMs: 80 }, never)).rejects.toMatchObject({ code: 'upstream_timeout', retryable: true });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('uses the given timeout code (downloads)', async () => {
    await expect(withDeadline(new AbortController().signal, { what: 'Download', timeoutMs: 10, timeoutCode: 'download_timeout' }, never)).rejects.toMatchObject({ code: 'download_timeout' });
  });

  it('a cancelled caller ends it at once as cancelled, not retryable', async () => {
    const parent = new AbortController();
    const pending = withDeadline(parent.signal, { what: 'Upstream call', timeoutMs: 60_000 }, never);
    setTimeout(() => parent.abort(), 10);
    await expect(pending).rejects.toMatchObject({ code: 'cancelled', retryable: false });
  });

  it('passes results and classified failures through, and network errors become connection errors', async () => {
    expect(await withDeadline(new AbortController().signal, { what: 'x', timeoutMs: 1000 }, async () => 42)).toBe(42);
    await expect(withDeadline(new AbortController().signal, { what: 'x', timeoutMs: 1000 }, () => fetch('http://127.0.0.1:1/'))).rejects.toMatchObject({ code: 'upstream_connection_error', retryable: true });
  });
});

it('an error message quoting a URL keeps only its origin: no credentials, path or signature', async () => {
  expect(withoutUrlSecrets('bad: http://user:pa55word@files.example:8080/a/b.png?X-Amz-Signature=SIG, and https://x.example/?t=1.')).toBe('bad: http://files.example:8080/…, and https://x.example/….');
  const failing = async () => {
    throw new TypeError('Request cannot be constructed from a URL that includes credentials: http://user:pa55word@127.0.0.1:4318/img?X-Amz-Signature=SECRETSIG');
  };
  const err = await withDeadline(new AbortController().signal, { what: 'Download', timeoutMs: 1000 }, failing).catch((e: Error) => e);
  expect(err).toMatchObject({ code: 'upstream_connection_error', retryable: true });
  expect((err as Error).message).toBe('Download failed: Request cannot be constructed from a URL that includes credentials: http://127.0.0.1:4318/…');
});

it('an upstream body quoted in a failure keeps only the origin of a URL in it', () => {
  const f = classifyHttpFailure(500, new Headers(), 'could not fetch https://files.example/x.png?X-Amz-Signature=SECRETSIG, try again');
  expect(f.message).toBe('Upstream answered 500: could not fetch https://files.example/…, try again');
});

it('quotes no body of a refused credential, and redacts credential-like tokens in any quoted body', () => {
  const key = 'sk-proj-AbCdEf0123456789xyz';
  const refused = classifyHttpFailure(401, new Headers(), `{"error":"Incorrect API key provided: ${key}"}`);
  // before: the whole key, in every tenant's view of its generation
  expect([refused.code, refused.message]).toEqual(['upstream_unauthorized', 'Upstream answered 401']);
  const echoed = classifyHttpFailure(400, new Headers(), `bad request from Bearer ${key} (key ${key})`);
  expect(echoed.message).not.toContain('AbCdEf0123456789');
  expect(echoed.message).toBe('Upstream answered 400: bad request from [redacted] (key [redacted])');
});

it('takes the key the request was sent with out of any quoted body, however it is escaped', () => {
  // no pattern of credentials knows this one: only that it was sent
  const key = 'GENKEY/zzz+SECRET=777';
  for (const status of [400, 422, 429, 500]) {
    const body = `{"error":"the credential ${key} may not ask for this", "escaped":"${JSON.stringify(key).slice(1, -1).replaceAll('/', '\\/')}", "url":"?k=${encodeURIComponent(key)}&lower=${encodeURIComponent(key).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())}"}`;
    const f = classifyHttpFailure(status, new Headers(), body, { secrets: [key] });
    expect(f.message).not.toMatch(/GENKEY|SECRET/i);
    expect(f.message).toContain('the credential [redacted] may not ask for this');
  }
});
