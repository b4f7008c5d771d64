import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Raised the way body-parser raises its errors, so the error handler answers it as a 400. */
export function notUtf8(): Error {
  return Object.assign(new Error('the body is not valid UTF-8'), { status: 400, statusCode: 400, type: 'charset.invalid', expose: true });
}

/** Whether a body's charset (as body-parser names it) is UTF-8. */
const isUtf8Charset = (charset: string) => /^utf-?8$/i.test(charset);

/**
 * body-parser's verify hook: a body sent as UTF-8 (said or by default) that is not is refused,
 * where body-parser would decode it with U+FFFD in place of the bad bytes and a topic would come
 * out other than the one sent.
 */
export function verifyUtf8(_req: IncomingMessage, _res: ServerResponse, body: Buffer, charset: string): void {
  if (isUtf8Charset(charset) && !isUtf8(body)) throw notUtf8();
}

/** Decodes UTF-8 arriving in pieces (a character may straddle two), refusing bytes that are not UTF-8. */
export function strictUtf8Decoder(): { write(piece: Buffer): string; end(): string } {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  const run = (decode: () => string) => {
    try {
      return decode();
    } catch {
      throw notUtf8();
    }
  };
  return { write: (piece) => run(() => decoder.decode(piece, { stream: true })), end: () => run(() => decoder.decode()) };
}
