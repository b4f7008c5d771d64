import { once } from 'node:events';
import { Readable } from 'node:stream';
import archiver from 'archiver';
import type { Response } from 'express';
import { isTerminal, presentBatch, presentGeneration, readBatchMessage, storageErrorText, type BatchRecord, type BatchResultLine, type GenerationRecord } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { answeredHead, END_EVENT_ID, endEventStreamAtOnce, openEventStream, toldTheEnd } from '../http/event-stream';
import { fromStorage } from '../http/problem';
import { onKeyRevoked } from '../http/revocation';
import type { BatchesService } from './batch.service';

const HEARTBEAT_MS = 15_000;
/** Count snapshots go out at most this often; item completions go out as they happen. */
const COUNTS_EVERY_MS = 250;

/** One line of `results`: the item as it stands. */
export function resultLine(ctx: ApiContext, index: number, id: string, record: GenerationRecord | null): BatchResultLine {
  if (!record) return { index, id, status: 'expired' };
  const g = presentGeneration(record, ctx.config);
  return { index, id, status: g.status, ...(g.result ? { result: g.result } : {}), ...(g.error ? { error: g.error } : {}) };
}

/** Writes, waiting for the client to take what it was sent; false once the client is gone. */
async function write(res: NodeJS.WritableStream & { destroyed?: boolean }, chunk: string, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (res.write(chunk)) return true;
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await once(res as unknown as NodeJS.EventEmitter, 'drain', { signal: ac.signal });
    return true;
  } catch {
    return false;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * `results`: one NDJSON line per item in submission order, a page of records at a time, each
 * page only read once the client took the one before: memory stays flat whatever the size.
 */
export async function streamResults(ctx: ApiContext, service: BatchesService, batch: BatchRecord, res: Response): Promise<void> {
  const signal = ctx.waits.forResponse(res);
  res.status(200).set({ 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store' });
  // HEAD: the answer's headers, without reading any item
  if (res.req.method === 'HEAD') return void res.end();
  const stopWatching = await onKeyRevoked(ctx, res, () => res.destroy());
  try {
    for await (const page of service.items(batch)) {
      let text = '';
      for (const { index, id, record } of page) text += `${JSON.stringify(resultLine(ctx, index, id, record))}\n`;
      // the client left, the key was revoked, or the process shuts down: cut the response (unfinished, so no client takes it for whole)
      if (!(await write(res, text, signal))) return void res.destroy();
    }
    res.end();
  } finally {
    await stopWatching();
  }
}

/**
 * `archive`: a zip of `results.jsonl` and every original its lines call completed (named by
 * index), streamed entry by entry. The lines are written first and the originals follow them, so
 * an archive taken while the batch runs agrees with itself: an item that completes meanwhile is
 * neither in the results as completed nor in the zip (a bit per item keeps which were).
 */
export async function streamArchive(ctx: ApiContext, service: BatchesService, batch: BatchRecord, res: Response): Promise<void> {
  const signal = ctx.waits.forResponse(res);
  if (signal.aborted) return void res.end();
  // a store that cannot be read is said before the answer begins, not by an archive cut after results.jsonl
  if (batch.completed > 0) await fromStorage(async () => ctx.storage.reachable?.());
  res.status(200).set({ 'Content-Type': 'application/zip', 'Content-Disposition': `attachment; filename="${batch.id}.zip"`, 'Cache-Control': 'no-store' });
  // HEAD: the answer's headers, without making the archive
  if (res.req.method === 'HEAD') return void res.end();
  // originals are already compressed: storing them costs no CPU and makes the archive start at once
  const archive = archiver('zip', { store: true });
  archive.on('warning', () => undefined);
  // a zip that cannot go on ends the response (its error is not the process's)
  archive.on('error', () => res.destroy());
  archive.pipe(res);
  const abort = () => archive.abort();
  signal.addEventListener('abort', abort, { once: true });
  // a revoked key closes the response, and so aborts the archive
  const stopWatching = await onKeyRevoked(ctx, res, () => res.destroy());
  const width = String(Math.max(0, batch.total - 1)).length;
  const add = async (source: Readable, name: string) => {
    // an aborted archive stops reading its entry but does not close it: that is ours to do
    const drop = () => source.destroy();
    signal.addEventListener('abort', drop, { once: true });
    // archiver pipes the entry on without listening to it: a file gone from storage, or a Redis
    // read of the results that fails, would otherwise be an error nobody handles (the process's end)
    const sourceFailed = new Promise<never>((_, reject) => source.on('error', reject));
    try {
      const done = once(archive, 'entry', { signal });
      archive.append(source, { name });
      await Promise.race([done, sourceFailed]);
    } catch (err) {
      drop();
      throw err;
    } finally {
      signal.removeEventListener('abort', drop);
    }
  };
  try {
    const completed = new Uint8Array(Math.ceil(batch.total / 8));
    // the results, page by page, as one entry generated while it is written
    const lines = async function* () {
      for await (const page of service.items(batch)) {
        let text = '';
        for (const { index, id, record } of page) {
          const line = resultLine(ctx, index, id, record);
          if (line.status === 'completed') completed[index >> 3]! |= 1 << (index & 7);
          text += `${JSON.stringify(line)}\n`;
        }
        yield text;
      }
    };
    await add(Readable.from(lines()), 'results.jsonl');
    for await (const page of service.items(batch)) {
      for (const { index, record } of page) {
        if (signal.aborted) return;
        if (!(completed[index >> 3]! & (1 << (index & 7)))) continue;
        const image = record?.status === 'completed' ? record.result?.image : undefined;
        if (!image) continue;
        const ext = image.key.slice(image.key.lastIndexOf('.') + 1);
        await add(ctx.storage.createReadStream(image.key), `${String(index).padStart(width, '0')}-${record!.id}.${ext}`);
      }
    }
    await archive.finalize();
  } catch (err) {
    // cut, not ended: the client sees the archive is incomplete
    if (!signal.aborted) ctx.logger.warn('a batch archive was cut short', { batchId: batch.id, error: storageErrorText(err) });
    archive.abort();
    res.destroy();
  } finally {
    signal.removeEventListener('abort', abort);
    await stopWatching();
  }
}

/** Finished items read (and sent) per step of catching up. */
const ITEMS_PAGE = 500;

/** A `Last-Event-ID` this stream gave out (an entry of the batch's finished-items stream); anything else starts afresh. */
function resumePoint(header: string | undefined): string | undefined {
  return header !== undefined && /^\d{1,15}-\d{1,15}$/.test(header) ? header : undefined;
}

/**
 * Server-sent events of one batch until it ends: `batch.counts` (the batch, at most every
 * COUNTS_EVERY_MS while counts move), `item` for each item that ends, in the order they
 * ended, and `batch.completed`. Items are read from the batch's finished-items stream, which
 * the record transition appends to; a live message only says when to read it. Every event's
 * id is where in that stream the client has been told up to, so a client that reconnects with
 * `Last-Event-ID` is told each item that ended while it was away, none twice; without one it
 * hears of items from the time it connects. Heartbeats read again, so a message missed in
 * between (a Redis reconnect) only delays what it announced. `batch.completed` has the id
 * END_EVENT_ID: a client that reconnects with it is answered 204 and stops.
 */
export async function streamBatchEvents(ctx: ApiContext, initial: BatchRecord, res: Response, lastEventId?: string): Promise<void> {
  if (toldTheEnd(lastEventId) && initial.status === 'completed') {
    res.status(204).end();
    return;
  }
  if (answeredHead(res)) return;
  // the client may have left, or shutdown begun, already (an abort event is not fired again): then nothing is opened
  const signal = ctx.waits.forResponse(res);
  if (signal.aborted) return endEventStreamAtOnce(res);
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  signal.addEventListener('abort', () => finish(), { once: true });
  openEventStream(res);
  let ended = false;
  let told = resumePoint(lastEventId);
  const frame = (event: string, data: unknown) => `id: ${event === 'batch.completed' ? END_EVENT_ID : told}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

  const sendItems = async () => {
    // a message heard before the starting point is known: the first read, queued after, covers it
    if (told === undefined) return;
    for (;;) {
      const page = await ctx.batches.finishedAfter(initial.id, told, ITEMS_PAGE);
      let text = '';
      for (const { entry, item } of page) {
        told = entry;
        text += frame('item', item);
      }
      if (ended || (text && !(await write(res, text, signal)))) return;
      if (page.length < ITEMS_PAGE) return;
    }
  };
  let lastCounts = '';
  const sendCounts = async () => {
    const batch = await ctx.batches.get(initial.id);
    if (ended) return;
    // gone (its retention ended): nothing more will come
    if (batch === null) return finish();
    // the last items are told before the end, even when the messages announcing them were missed
    if (batch.status === 'completed') await sendItems();
    if (ended) return;
    const data = presentBatch(batch);
    const text = JSON.stringify(data);
    if (text !== lastCounts) {
      lastCounts = text;
      res.write(frame(batch.status === 'completed' ? 'batch.completed' : 'batch.counts', data));
    }
    if (batch.status === 'completed') finish();
  };
  // reads run one after another, so events go out in order: an item before the counts that include it
  let chain = Promise.resolve();
  const run = (step: () => Promise<void>) => {
    chain = chain.then(step).catch(() => undefined);
  };
  let countsTimer: NodeJS.Timeout | undefined;
  const countsSoon = () => {
    countsTimer ??= setTimeout(() => {
      countsTimer = undefined;
      run(sendCounts);
    }, COUNTS_EVERY_MS);
  };
  // a read already waiting its turn covers every item that ends before it runs: messages coalesce
  let itemsQueued = false;
  const readItems = () => {
    if (itemsQueued) return;
    itemsQueued = true;
    run(() => {
      itemsQueued = false;
      return sendItems();
    });
  };
  const unsubscribe = await ctx.hub
    .subscribe(ctx.keys.batchChannel(initial.id), (message) => {
      const m = message === null ? null : readBatchMessage(message);
      if (m?.type === 'batch.completed') {
        clearTimeout(countsTimer);
        countsTimer = undefined;
        return run(sendCounts);
      }
      // an item that starts moves the counts only; one that ends (or a reconnect, which may have missed some) is read
      if (m?.type !== 'item' || isTerminal(m.status)) readItems();
      countsSoon();
    })
    .catch(() => null);
  const stopWatching = await onKeyRevoked(ctx, res, () => finish());
  const heartbeat = setInterval(() => {
    res.write(': keep-alive\n\n');
    readItems();
    countsSoon();
  }, HEARTBEAT_MS);
  try {
    // subscribed first: an item that ends from here on is read, whether it ends before or after this point
    if (told === undefined) {
      try {
        told = await ctx.batches.finishedEnd(initial.id);
      } catch {
        return;
      }
    }
    readItems();
    run(sendCounts);
    await finished;
  } finally {
    ended = true;
    clearInterval(heartbeat);
    clearTimeout(countsTimer);
    await unsubscribe?.();
    await stopWatching();
    res.end();
  }
}
