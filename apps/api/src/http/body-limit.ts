import type { Request, RequestHandler, Response } from 'express';
import { HttpProblem, sendProblem } from './problem';

/**
 * What is still read off (and thrown away) after a body is refused, so a client that sends its
 * whole body before reading (most simple clients do) still gets the answer instead of a broken
 * pipe; past either bound the connection goes.
 */
const LINGER_BYTES = 64 * 1024 * 1024;
const LINGER_MS = 5000;

/**
 * A body larger than `limit` is refused with 413 before any of it is parsed (declared) or as
 * soon as the limit is passed (sent in chunks, with no length declared). Body parsers refuse
 * it too, but only after reading off everything the client sends, which a client promising or
 * streaming gigabytes could keep going for as long as the server's request timeout; here the
 * rest is read off only within the bounds above. On a keep-alive connection the answer goes at
 * once; a connection the client will close is closed by the server right after the answer,
 * which a client still sending would see as a broken pipe, so there the answer waits for the
 * end of the body or the bounds.
 */
export function refuseOversizedBody(limit: number): RequestHandler {
  return (req, res, next) => {
    const declared = req.headers['content-length'];
    if (declared === undefined) {
      if (req.headers['transfer-encoding'] !== undefined) refuseOnceOver(req, res, limit);
      return next();
    }
    if (Number(declared) > limit) return refuse(req, res, limit);
    next();
  };
}

/**
 * `reader` (a body parser) behind refuseOversizedBody: what it read goes on to the route only
 * if no 413 was sent meanwhile. A compressed body is counted on the wire, where it can pass the
 * limit while it inflates to less; its reader then finishes, but the route must not act on a
 * request already answered.
 */
export function limitedBody(limit: number, reader: RequestHandler): RequestHandler {
  const guard = refuseOversizedBody(limit);
  return (req, res, next) => guard(req, res, () => reader(req, res, (err?: unknown) => (res.headersSent && !err ? undefined : next(err))));
}

/**
 * Counts a chunked body as its reader takes it, and refuses it once past the limit. The count
 * starts as the reader starts reading (listening from the start would set the body flowing
 * before the reader listens, and it would miss the first chunks).
 */
function refuseOnceOver(req: Request, res: Response, limit: number): void {
  let received = 0;
  const count = (chunk: Buffer) => {
    received += chunk.length;
    if (received <= limit) return;
    req.off('data', count);
    refuse(req, res, limit);
  };
  const onListener = (event: string | symbol) => {
    if (event !== 'data') return;
    req.off('newListener', onListener);
    req.on('data', count);
  };
  req.on('newListener', onListener);
  res.once('close', () => req.off('newListener', onListener));
}

function refuse(req: Request, res: Response, limit: number): void {
  const answer = () => {
    if (!res.headersSent) sendProblem(res, new HttpProblem(413, 'Payload too large', `The request body is larger than the limit (${limit} bytes)`));
  };
  const keepAlive = req.httpVersion === '1.1' && !/\bclose\b/i.test(req.headers.connection ?? '');
  if (keepAlive) answer();
  let lingered = 0;
  const stop = () => {
    clearTimeout(timer);
    req.removeListener('data', onData);
    if (res.headersSent) req.socket.destroy();
    else {
      res.setHeader('Connection', 'close');
      answer();
    }
  };
  const onData = (chunk: Buffer) => {
    lingered += chunk.length;
    if (lingered > LINGER_BYTES) stop();
  };
  const timer = setTimeout(stop, LINGER_MS).unref();
  req.on('data', onData);
  req.once('end', () => {
    clearTimeout(timer);
    answer();
  });
  req.once('close', () => clearTimeout(timer));
  req.resume();
}
