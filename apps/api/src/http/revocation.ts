import type { Response } from 'express';
import type { ApiContext } from '../context';

/**
 * Calls `onRevoked` once the managed key a streaming response was opened with is revoked (a
 * revocation holds everywhere within a second, open streams included). The revocation is
 * announced on a channel; the key is also looked up once subscribed (a revocation between the
 * request's check and the subscription was announced to no one here), and at each resync after
 * a reconnect of the subscriber (see EventHub), when announcements may have been missed.
 * Resolves the stop; a request made with a configured key (API_KEYS) or none has nothing to watch.
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
  const check = () => void ctx.apiKeyStore.exists(prefix).then((there) => there || revoked(), () => undefined);
  const stop = await ctx.hub
    .subscribe(ctx.keys.apiKeyRevocations(), (message) => {
      if (message === prefix) revoked();
      else if (message === null && !over) check();
    })
    .catch(() => null);
  check();
  return async () => {
    over = true;
    await stop?.();
  };
}
