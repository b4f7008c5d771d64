import type { Response } from 'express';

/**
 * The id of a stream's last event (the generation's or the batch's end). EventSource reconnects
 * whenever a stream closes, the last id it saw in hand; a reconnect with this one is answered 204,
 * which tells it to stop, instead of the end again (and again, without end).
 */
export const END_EVENT_ID = 'end';

/** Whether a request reconnects after being told the end. */
export function toldTheEnd(lastEventId: string | undefined): boolean {
  return lastEventId === END_EVENT_ID;
}

/** Sends the headers of an event stream at once, so the client knows it is connected. */
export function openEventStream(res: Response): void {
  res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
}

/**
 * HEAD of an event stream (Express answers it with the GET's handler): its headers, and the end,
 * rather than a stream held open, with its subscription, until the subject ends. Returns whether
 * the request was a HEAD (and is answered).
 */
export function answeredHead(res: Response): boolean {
  if (res.req.method !== 'HEAD') return false;
  openEventStream(res);
  res.end();
  return true;
}

/**
 * A stream asked for once its process has begun to shut down (or its client has gone) opens
 * nothing: it is answered as an event stream that ends at once, with a short reconnect delay,
 * so that an EventSource, or any client that follows the stream, reconnects, to a process that
 * is up. A body-less 200 of another type reads as a misaddressed API, and an EventSource
 * stops for good on anything but an event stream.
 */
export function endEventStreamAtOnce(res: Response): void {
  if (res.writableEnded || res.destroyed) return;
  openEventStream(res);
  res.end('retry: 1000\n\n');
}
