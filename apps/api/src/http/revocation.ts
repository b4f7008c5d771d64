import type { Response } from 'express';
import type { ApiContext } from '../context';

/** After a reconnect the key is looked up again this long after it (ms): the channel is subscribed again, and the reading connection back, a moment later. */
const RECHECK_AFTER_MS = [0, 250, 1000, 3000];

/**
 * Calls `onRevoked` once the managed key a streaming response was opened with is revoked (a
 * revocation holds everywhere within a second, open streams included). The revocation is
 * announced on a channel; the key is also looked up once subscribed (a revocation between the
 * request's check and the subscription was announced to no one here), and again after a
 * reconnect of the subscriber, when announcements may have been missed. Resolves the stop; a
 * request made with a configured key (API_KEYS) or none has nothing to watch.
 */
export async function onKeyRevoked(ctx: ApiContext, res: Response, onRevoked: () => void): Promise<() => Promise<void>> {
  const prefix = res.req.managedKey;
  if (!prefix) return async () => undefined;
  let over = false;
  const revoked = () => {
    if (over) return;
    over = true;
    onRevoked();
  };
  const timers = new Set<NodeJS.Timeout>();
  const check = () => void ctx.apiKeyStore.exists(prefix).then((there) => there || revoked(), () => undefined);
  const recheck = () => {
    for (const ms of RECHECK_AFTER_MS) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!over) check();
      }, ms);
      timers.add(timer);
    }
  };
  const stop = await ctx.hub
    .subscribe(ctx.keys.apiKeyRevocations(), (message) => {
      if (message === prefix) revoked();
      else if (message === null) recheck();
    })
    .catch(() => null);
  check();
  return async () => {
    over = true;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    await stop?.();
  };
}
