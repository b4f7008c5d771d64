import type { Keys } from '../keys';
import { decodeRecord } from '../records/codec';
import { hashOf, type GenerationStore } from '../records/generation-store';
import { readGenerationMessage } from '../schemas/channel';
import { isTerminal, type GenerationRecord } from '../schemas/generation';
import type { EventHub } from './event-hub';

export interface TerminalWatch {
  /**
   * Resolves with the latest record once it is terminal, `timeoutMs` has passed or `signal`
   * aborts (null if it vanished). Nothing of the wait outlives it: its timer is cleared.
   * `created` is the record as written after the watch began: nothing it missed, no first read.
   */
  untilTerminal(timeoutMs: number, signal?: AbortSignal, created?: GenerationRecord): Promise<GenerationRecord | null>;
  close(): Promise<void>;
}

/**
 * Watches a generation through its pub/sub channel instead of polling. Subscribe first,
 * then enqueue, then call `untilTerminal` (which reads the record once after subscribing),
 * so a generation that finishes at once is never missed.
 */
export async function watchGeneration(hub: EventHub, store: GenerationStore, keys: Keys, id: string): Promise<TerminalWatch> {
  let terminal = false;
  // the record a terminal event carried: the answer, without reading it again
  let ended: GenerationRecord | null = null;
  let wake: () => void = () => undefined;
  const unsubscribe = await hub.subscribe(keys.generationChannel(id), (message) => {
    if (message === null) {
      // reconnected: the end may have been published while we were away (a record not there yet
      // is one still being created: the wait goes on)
      void store.get(id).then(
        (r) => {
          if (r && isTerminal(r.status)) {
            terminal = true;
            wake();
          }
        },
        () => undefined,
      );
      return;
    }
    const event = parseGenerationEvent(message);
    if (event && isTerminal(event.status)) {
      terminal = true;
      ended = event.record;
      wake();
    }
  });
  return {
    async untilTerminal(timeoutMs, signal, created) {
      const first = created ?? (await store.get(id));
      if (!first || isTerminal(first.status) || timeoutMs <= 0 || signal?.aborted) return first;
      if (!terminal) await sleepUntilWoken((w) => (wake = w), timeoutMs, signal);
      if (ended) return ended;
      // an accepted generation is never turned into an error by a read that fails now
      return store.get(id).catch(() => first);
    },
    close: unsubscribe,
  };
}

/**
 * Sleeps until woken (`setWake` is handed the waker), `timeoutMs` has passed or `signal` aborts.
 * Nothing of the sleep outlives it: its timer and listener are gone, and the waker is reset.
 */
export async function sleepUntilWoken(setWake: (wake: () => void) => void, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: () => void = () => undefined;
  await new Promise<void>((resolve) => {
    setWake(resolve);
    onAbort = resolve;
    timer = setTimeout(resolve, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  clearTimeout(timer);
  signal?.removeEventListener('abort', onAbort);
  setWake(() => undefined);
}

/**
 * A change published on a generation's channel (see transition.ts): its status, its id and, for
 * an end, the record as it ended (null when absent or unreadable: read it instead). Null for a
 * message that is not one.
 */
export function parseGenerationEvent(message: string): { status: GenerationRecord['status']; id?: string; record: GenerationRecord | null } | null {
  const event = readGenerationMessage(message);
  if (!event) return null;
  let ended: GenerationRecord | null = null;
  try {
    ended = event.record ? decodeRecord(hashOf(event.record)) : null;
  } catch {
    ended = null;
  }
  return { status: event.status, ...(event.id ? { id: event.id } : {}), record: ended };
}
