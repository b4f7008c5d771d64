import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';
import { classifyHttpFailure, withDeadline } from './http';

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
    const res = await fetch(url, { redirect: 'follow', signal });
    try {
      if (res.status === 404 || res.status === 410) {
        throw new GenerationFailure(ERROR_CODES.downloadExpired, `Image URL answered ${res.status}: it has expired`, true);
      }
      if (!res.ok) {
        const failure = classifyHttpFailure(res.status, res.headers, await res.text(), 'Download');
        throw new GenerationFailure(ERROR_CODES.downloadFailed, failure.message, failure.retryable, failure.retryAfterMs);
      }
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (declared > opts.maxBytes) throw tooLarge(declared, opts.maxBytes);
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body ?? []) {
        total += chunk.byteLength;
        if (total > opts.maxBytes) throw tooLarge(total, opts.maxBytes);
        chunks.push(Buffer.from(chunk));
      }
      return { data: Buffer.concat(chunks, total), contentType: res.headers.get('content-type') };
    } catch (err) {
      // stop the transfer: an unread body keeps the connection busy
      await res.body?.cancel().catch(() => undefined);
      throw err;
    }
  });
}

function tooLarge(bytes: number, max: number): GenerationFailure {
  return new GenerationFailure(ERROR_CODES.downloadTooLarge, `Image is larger than the limit of ${max} bytes (got at least ${bytes})`, false);
}
