import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';

/** Parses Retry-After (delta-seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CONTENT_POLICY = /content[_ -]?policy|safety|moderation|nsfw|not allowed/i;

/** Turns a non-2xx upstream answer into a classified failure. */
export function classifyHttpFailure(status: number, headers: Headers, body: string, what = 'Upstream'): GenerationFailure {
  const detail = body.replace(/\s+/g, ' ').trim().slice(0, 200);
  const message = `${what} answered ${status}${detail ? `: ${detail}` : ''}`;
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
  if (status === 429) return new GenerationFailure(ERROR_CODES.rateLimited, message, true, retryAfterMs);
  if (status === 408) return new GenerationFailure(ERROR_CODES.timeout, message, true, retryAfterMs);
  if (status >= 500) return new GenerationFailure(ERROR_CODES.unavailable, message, true, retryAfterMs);
  if (status === 401 || status === 403) return new GenerationFailure(ERROR_CODES.unauthorized, message, false);
  if (CONTENT_POLICY.test(body)) return new GenerationFailure(ERROR_CODES.contentPolicy, message, false);
  return new GenerationFailure(ERROR_CODES.rejected, message, false);
}

/** Classifies a thrown fetch error: our own timeout, a cancellation, or a network failure. */
export function classifyFetchError(err: unknown, signal: AbortSignal, timeoutMs: number, what = 'Upstream call'): GenerationFailure {
  if (err instanceof GenerationFailure) return err;
  const reason: unknown = signal.reason;
  if (signal.aborted && reason instanceof GenerationFailure) return reason;
  if (signal.aborted && (reason as Error | undefined)?.name === 'TimeoutError') {
    return new GenerationFailure(ERROR_CODES.timeout, `${what} timed out after ${timeoutMs} ms`, true);
  }
  if (signal.aborted) return new GenerationFailure(ERROR_CODES.cancelled, `${what} aborted`, false);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new GenerationFailure(ERROR_CODES.connection, `${what} failed: ${why}`, true);
}

/** One upstream call: a fresh timeout joined with the caller's signal. */
export async function fetchWithTimeout(
  url: string,
  init: RequestInit,
  signal: AbortSignal,
  timeoutMs: number,
  what: string,
): Promise<{ res: Response; signal: AbortSignal }> {
  const combined = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  try {
    const res = await fetch(url, { ...init, signal: combined });
    return { res, signal: combined };
  } catch (err) {
    throw classifyFetchError(err, combined, timeoutMs, what);
  }
}

/** Reads a body as text within the same signal; a failure mid-body is classified like any other. */
export async function readText(res: Response, signal: AbortSignal, timeoutMs: number, what: string): Promise<string> {
  try {
    return await res.text();
  } catch (err) {
    throw classifyFetchError(err, signal, timeoutMs, what);
  }
}
