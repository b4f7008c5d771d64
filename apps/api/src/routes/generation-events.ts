import type { Response } from 'express';
import { isTerminal, presentGeneration, readGenerationMessage, type GenerationRecord, type GenerationStatus } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { answeredHead, END_EVENT_ID, endEventStreamAtOnce, openEventStream, toldTheEnd } from '../http/event-stream';
import { onKeyRevoked } from '../http/revocation';

const HEARTBEAT_MS = 15_000;

/** The id a reconnecting client last saw, when it is one of ours (a count); else 0. */
function resumedFrom(lastEventId: string | undefined): number {
  return lastEventId !== undefined && /^[0-9]{1,15}$/.test(lastEventId) ? Number(lastEventId) : 0;
}

/**
 * The frames of a generation's event stream, numbered on from `lastSeq` (the end's id is
 * END_EVENT_ID). The same event with the same data twice in a row is told once (a re-read after
 * the change it was read for was told; a change's own event still follows a snapshot that showed
 * its state, for listeners of that event), and nothing follows the end (a re-read queued before
 * the end was told would tell it again). Null: nothing to send.
 */
export function generationEventFrames(lastSeq: number): (type: string, status: GenerationStatus, data: string) => string | null {
  let seq = lastSeq;
  let last = '';
  let ended = false;
  return (type, status, data) => {
    if (ended) return null;
    const event = `${type}\n${data}`;
    if (event === last) return null;
    last = event;
    ended = isTerminal(status);
    return `id: ${ended ? END_EVENT_ID : ++seq}\nevent: ${type}\ndata: ${data}\n\n`;
  };
}

/**
 * Server-sent events of a generation's state changes, ending when it does (or when the
 * client leaves, or the process shuts down). Each event carries the record as it is after
 * that change; after a reconnect to Redis, and on every heartbeat, the record is re-read
 * so an event lost in between is made up for. The end's id is END_EVENT_ID: a client that
 * reconnects with it, the generation ended, is answered 204 and stops.
 */
export async function streamGenerationEvents(ctx: ApiContext, initial: GenerationRecord, res: Response, lastEventId?: string): Promise<void> {
  if (toldTheEnd(lastEventId) && isTerminal(initial.status)) {
    res.status(204).end();
    return;
  }
  if (answeredHead(res)) return;
  // ends when the client leaves or the process shuts down; either may have happened already (an
  // abort event is not fired again): then nothing is opened, and a client still there reconnects
  const ended = ctx.waits.forResponse(res);
  if (ended.aborted) return endEventStreamAtOnce(res);
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  ended.addEventListener('abort', () => finish(), { once: true });

  openEventStream(res);
  // ids go on from the one the client last saw, so they only grow across its reconnects
  const frameOf = generationEventFrames(resumedFrom(lastEventId));
  let done = false;
  const send = (type: string, record: GenerationRecord) => {
    const frame = frameOf(type, record.status, JSON.stringify(presentGeneration(record, ctx.config)));
    if (frame) res.write(frame);
  };
  // re-reads run one after another so events go out in order, the first snapshot first
  let openGate: () => void = () => undefined;
  let chain = new Promise<void>((resolve) => (openGate = resolve));
  const refresh = (type: string) => {
    chain = chain
      .then(async () => {
        if (done) return;
        const record = await ctx.store.get(initial.id);
        if (!record) return finish();
        // a record read after it ended is that end, whatever led to the read (a change's event, a
        // heartbeat, a resync after a reconnect): a client waiting for the end event hears it
        send(isTerminal(record.status) ? `generation.${record.status}` : type, record);
        if (isTerminal(record.status)) finish();
      })
      .catch(() => undefined);
  };

  const unsubscribe = await ctx.hub
    .subscribe(ctx.keys.generationChannel(initial.id), (message) => refresh((message === null ? null : readGenerationMessage(message)?.type) ?? 'generation.snapshot'))
    .catch(() => null);
  // the key it was opened with revoked: the stream ends (a client that reconnects is refused)
  const stopWatching = await onKeyRevoked(ctx, res, () => finish());
  const heartbeat = setInterval(() => {
    res.write(': keep-alive\n\n');
    refresh('generation.snapshot');
  }, HEARTBEAT_MS);
  try {
    const first = (await ctx.store.get(initial.id).catch(() => initial)) ?? initial;
    // a generation already ended is told as its end, so a client that closes on the end event does
    if (isTerminal(first.status)) {
      send(`generation.${first.status}`, first);
      finish();
    } else send('generation.snapshot', first);
    openGate();
    await finished;
  } finally {
    done = true;
    clearInterval(heartbeat);
    await unsubscribe?.();
    await stopWatching();
    res.end();
  }
}
