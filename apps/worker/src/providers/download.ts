import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';
import { classifyFetchError, classifyHttpFailure, fetchWithTimeout, readText } from './http';

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
export async function downloadImage(url: string, opts: DownloadOptions): Promise<{ data: Buffer; contentType: string | null }> {
  const { res, signal } = await fetchWithTimeout(url, { redirect: 'follow' }, opts.signal, opts.timeoutMs, 'Download');
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel().catch(() => undefined);
    throw new GenerationFailure(ERROR_CODES.downloadExpired, `Image URL answered ${res.status}: it has expired`, true);
  }
  if (!res.ok) {
    const failure = classifyHttpFailure(res.status, res.headers, await readText(res, signal, opts.timeoutMs, 'Download'), 'Download');
    throw new GenerationFailure(ERROR_CODES.downloadFailed, failure.message, failure.retryable, failure.retryAfterMs);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > opts.maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared, opts.maxBytes);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? []) {
      total += chunk.byteLength;
      if (total > opts.maxBytes) throw tooLarge(total, opts.maxBytes);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof GenerationFailure) {
      await res.body?.cancel().catch(() => undefined);
      throw err;
    }
    const failure = classifyFetchError(err, signal, opts.timeoutMs, 'Download');
    throw failure.code === ERROR_CODES.timeout ? new GenerationFailure(ERROR_CODES.downloadTimeout, failure.message, true) : failure;
  }
  return { data: Buffer.concat(chunks, total), contentType: res.headers.get('content-type') };
}

function tooLarge(bytes: number, max: number): GenerationFailure {
  return new GenerationFailure(ERROR_CODES.downloadTooLarge, `Image is larger than the limit of ${max} bytes (got at least ${bytes})`, false);
}
