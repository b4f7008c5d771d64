import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { JSONParser, TokenType } from '@streamparser/json';
import { parse as parseContentType } from 'content-type';
import type { Request } from 'express';
import iconv from 'iconv-lite';
import { MAX_METADATA_BYTES } from '@imagegen/shared';
import { invalid } from '../http/problem';
import { strictUtf8Decoder } from '../http/utf8';

/** Bytes parsed between two yields to the event loop: each step stays a few milliseconds. */
const PIECE_BYTES = 16 * 1024;

/**
 * Deeper than this no batch can be valid (root, items, item, metadata, then metadata's own
 * nesting, which its byte cap bounds); refusing it keeps a body of brackets from growing
 * the parser's stack without end.
 */
export const MAX_NESTING = 4 + MAX_METADATA_BYTES / 2;

/** Raised the way body-parser raises it, so the error handler answers it the same way. */
function bodyError(status: number, type: string, message: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, type, expose: true });
}

const tooLarge = () => bodyError(413, 'entity.too.large', 'request entity too large');
const notJson = () => bodyError(400, 'entity.parse.failed', 'the body is not valid JSON');
const aborted = () => bodyError(400, 'request.aborted', 'request aborted');

/** Whether the request carries a body at all (body-parser's rule: a length or a transfer encoding). */
function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || !Number.isNaN(Number.parseInt(req.headers['content-length'] ?? '', 10));
}

function charsetOf(req: Request): string {
  const header = req.headers['content-type'];
  return (header ? parseContentType(header).parameters.charset?.toLowerCase() : undefined) ?? 'utf-8';
}

function decompressor(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress {
  switch (encoding) {
    case 'gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
  }
  throw bodyError(415, 'encoding.unsupported', `unsupported content encoding "${encoding}"`);
}

/** Reads off whatever the client still sends, so the answer reaches it. */
function drain(req: Request): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    req.once('end', resolve);
    req.once('close', resolve);
    req.resume();
  });
}

/**
 * Hands each chunk of `source` to `consume`, the stream paused until it is done. Rejects
 * when `consume` does, or with `request.aborted` when the client goes away first.
 */
function consumeChunks(req: Request, source: Readable, consume: (chunk: Buffer) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let pending: Promise<void> = Promise.resolve();
    const onData = (chunk: Buffer) => {
      source.pause();
      pending = consume(chunk).then(() => {
        if (!settled) source.resume();
      }, settle);
    };
    const onEnd = () => void pending.then(() => settle());
    const onGone = () => {
      if (!req.complete) settle(aborted());
    };
    // a body that does not decompress is the client's fault, as with express.json
    const onSourceError = (err: Error) => settle(source === req ? aborted() : bodyError(400, 'stream.decode.failed', err.message));
    function settle(err?: unknown) {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onSourceError);
      req.off('close', onGone);
      req.off('error', onGone);
      if (err) reject(err);
      else resolve();
    }
    source.on('data', onData);
    source.once('end', onEnd);
    source.on('error', onSourceError);
    req.once('close', onGone);
    req.on('error', onGone);
  });
}

/**
 * Parses a JSON request body as it arrives, a piece at a time with the event loop free in
 * between, so a body of megabytes never holds up other requests the way one `JSON.parse`
 * does. Same answers as express.json (`strict: false`): no body is `undefined`, an empty one
 * `{}`; malformed JSON 400, over `limit` bytes (after decompression) 413, an unknown charset
 * or content encoding 415. A client that goes away mid-upload ends the reading at once.
 */
export async function readJsonBody(req: Request, limit: number): Promise<unknown> {
  if (!hasBody(req)) return undefined;
  const charset = charsetOf(req);
  if (!charset.startsWith('utf-') || !iconv.encodingExists(charset)) throw bodyError(415, 'charset.unsupported', `unsupported charset "${charset.toUpperCase()}"`);
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  const inflate = encoding === 'identity' ? undefined : req.pipe(decompressor(encoding));
  const source: Readable = inflate ?? req;
  const declared = encoding === 'identity' && req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;

  // decoded to text first: UTF-8 strictly (bytes that are not UTF-8 are refused), any other utf- charset by iconv
  const decoder = charset === 'utf-8' || charset === 'utf8' ? strictUtf8Decoder() : iconv.getDecoder(charset);
  const parser = new JSONParser({ paths: ['$'] });
  let depth = 0;
  let parsed: { value: unknown } | undefined;
  parser.onToken = ({ token }) => {
    if (token === TokenType.LEFT_BRACE || token === TokenType.LEFT_BRACKET) {
      if (++depth > MAX_NESTING) throw invalid('The body nests too deeply', [{ path: '(body)', message: `must not nest deeper than ${MAX_NESTING} levels` }]);
    } else if (token === TokenType.RIGHT_BRACE || token === TokenType.RIGHT_BRACKET) depth--;
  };
  parser.onValue = ({ value, stack }) => {
    if (stack.length === 0) parsed = { value };
  };
  const feed = (piece: string) => {
    try {
      parser.write(piece);
    } catch (err) {
      if ((err as { status?: number }).status) throw err;
      throw notJson();
    }
  };

  let decodedAny = false;
  const feedText = (text: string | undefined) => {
    if (!text) return;
    decodedAny = true;
    feed(text);
  };

  let received = 0;
  try {
    if (declared !== undefined && declared > limit) throw tooLarge();
    await consumeChunks(req, source, async (chunk) => {
      received += chunk.length;
      if (received > limit) throw tooLarge();
      for (let at = 0; at < chunk.length; at += PIECE_BYTES) {
        if (at > 0) await yieldToLoop();
        const piece = chunk.subarray(at, at + PIECE_BYTES);
        feedText(decoder.write(piece));
      }
      await yieldToLoop();
    });
    feedText(decoder.end());
    if (declared !== undefined && received !== declared) throw bodyError(400, 'request.size.invalid', 'request size did not match content length');
    // an empty body reads as {}, a common client-side mistake (as with express.json)
    if (!decodedAny) return {};
    try {
      if (!parser.isEnded) parser.end();
    } catch {
      throw notJson();
    }
    if (!parsed) throw notJson();
    return parsed.value;
  } catch (err) {
    if (inflate) {
      req.unpipe(inflate);
      inflate.destroy();
    }
    const status = (err as { status?: number }).status;
    if (status !== undefined && (err as { type?: string }).type !== 'request.aborted') await drain(req);
    throw err;
  }
}
