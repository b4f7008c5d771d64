import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';
import { classifyHttpFailure, readBody, withCredentialsAsHeader, withDeadline } from './http';

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
    const res = await fetchFollowing(url, signal);
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

/** As many redirects as fetch itself follows. */
const MAX_REDIRECTS = 20;
/** The statuses fetch follows (any other 3xx is the answer itself). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * GET `url`, following redirects as fetch does (its credentials go to its own origin only), but
 * a redirect that can never lead to the image (one past MAX_REDIRECTS, a loop, one to a scheme
 * other than http(s), one without a usable Location) is the file host's answer, and fails at
 * once as download_failed rather than as a connection error that every attempt meets again.
 */
async function fetchFollowing(url: string, signal: AbortSignal): Promise<Response> {
  const { target, headers } = withCredentialsAsHeader(url);
  let current = target;
  // the credentials are dropped at the first hop to another origin, for good
  let sent = headers;
  for (let hops = 0; ; hops++) {
    const res = await fetch(current, { headers: sent, redirect: 'manual', signal });
    const location = REDIRECT_STATUSES.has(res.status) ? res.headers.get('location') : null;
    if (location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    const next = URL.canParse(location, current.href) ? new URL(location, current) : undefined;
    const refused = unfollowable(next);
    if (refused) throw new GenerationFailure(ERROR_CODES.downloadFailed, `Download answered ${res.status} with a redirect to ${refused}`, false);
    if (hops >= MAX_REDIRECTS) throw new GenerationFailure(ERROR_CODES.downloadFailed, `Download redirected more than ${MAX_REDIRECTS} times`, false);
    const target = next as URL;
    if (target.origin !== current.origin) sent = {};
    current = target;
  }
}

/** What a redirect's target is, when it is nothing a download follows; undefined when it is. */
function unfollowable(next: URL | undefined): string | undefined {
  if (!next) return 'something that is not a URL';
  if (next.protocol !== 'http:' && next.protocol !== 'https:') return `a ${next.protocol} URL`;
  if (next.username || next.password) return 'a URL with credentials in it';
  return undefined;
}

function tooLarge(bytes: number, max: number): GenerationFailure {
  return new GenerationFailure(ERROR_CODES.downloadTooLarge, `Image is larger than the limit of ${max} bytes (got at least ${bytes})`, false);
}
