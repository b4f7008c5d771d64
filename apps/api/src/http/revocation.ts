import type { Response } from 'express';
import type { ApiContext } from '../context';

/**
 * Calls `onRevoked` once the managed key a streaming response was opened with is revoked (a
 * revocation holds everywhere within a second, open streams included); after a reconnect of
 * the subscriber, when announcements may have been missed, the key is looked up again.
 * Resolves the stop; a request made with a configured key (API_KEYS) or none has nothing to watch.
 */
export async function onKeyRevoked(ctx: ApiContext, res: Response, onRevoked: () => void): Promise<() => Promise<void>> {
  const prefix = res.req.managedKey;
  if (!prefix) return async () => undefined;
  let told = false;
  const revoked = () => {
    if (told) return;
    told = true;
    onRevoked();
  };
  const stop = await ctx.hub
    .subscribe(ctx.keys.apiKeyRevocations(), (message) => {
      if (message === prefix) revoked();
      else if (message === null) void ctx.apiKeyStore.exists(prefix).then((there) => there || revoked(), () => undefined);
    })
    .catch(() => null);
  return async () => {
    await stop?.();
  };
}
