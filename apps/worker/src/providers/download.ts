import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';
import { classifyHttpFailure, readBody, withDeadline } from './http';

export interface DownloadOptions {
  signal: AbortSignal;
  timeoutMs: number;
  maxBytes: number;
}

/**
 * Downloads an upstream image at once, streaming so an oversized body is cut off at
 * `maxBytes` instead of being buffered. 404/410 mean the URL expired: retryable, and the
 * caller asks the upstream for a new one.
 */
export function downloadImage(url: string, opts: DownloadOptions): Promise<{ data: Buffer; contentType: string | null }> {
  return withDeadline(opts.signal, { what: 'Download', timeoutMs: opts.timeoutMs, timeoutCode: ERROR_CODES.downloadTimeout }, async (signal) => {
    const { target, headers } = withCredentialsAsHeader(url);
    const res = await fetch(target, { headers, redirect: 'follow', signal });
    try {
      if (res.status === 404 || res.status === 410) {
        throw new GenerationFailure(ERROR_CODES.downloadExpired, `Image URL answered ${res.status}: it has expired`, true);
      }
      if (!res.ok) {
        // the file host may be anything the upstream pointed at: its body is not passed on
        const failure = classifyHttpFailure(res.status, res.headers, '', { what: 'Download', quoteBody: false });
        throw new GenerationFailure(ERROR_CODES.downloadFailed, failure.message, failure.retryable, failure.retryAfterMs);
      }
      const data = await readBody(res, opts.maxBytes, (n) => tooLarge(n, opts.maxBytes));
      return { data, contentType: res.headers.get('content-type') };
    } catch (err) {
      // stop the transfer: an unread body keeps the connection busy
      await res.body?.cancel().catch(() => undefined);
      throw err;
    }
  });
}

/**
 * fetch refuses a URL with credentials in it (`https://user:pass@host/…`); a file host that
 * hands one out means HTTP Basic authentication, which is sent as the header instead.
 */
function withCredentialsAsHeader(url: string): { target: URL; headers: Record<string, string> } {
  const target = new URL(url);
  if (!target.username && !target.password) return { target, headers: {} };
  const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
  target.username = '';
  target.password = '';
  return { target, headers: { Authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } };
}

function tooLarge(bytes: number, max: number): GenerationFailure {
  return new GenerationFailure(ERROR_CODES.downloadTooLarge, `Image is larger than the limit of ${max} bytes (got at least ${bytes})`, false);
}
