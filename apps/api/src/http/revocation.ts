import type { Response } from 'express';
import type { ApiContext } from '../context';
import { HttpProblem } from './problem';

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

/** What a request made with a key revoked while it waited is answered. */
export const keyRevokedProblem = (): HttpProblem => new HttpProblem(401, 'Unauthorized', 'The API key was revoked while the request waited', undefined, { 'WWW-Authenticate': 'Bearer' });

/**
 * The signal of a wait for `res` (`Prefer: wait`, the seed endpoint): aborted when the response's
 * own wait is (client gone, shutdown; see Waits.forResponse), and once the managed key it was
 * made with is revoked, which `revoked` then says: the answer is a 401, not what the key may no
 * longer read. `stop` once the wait is over.
 */
export async function waitWatchingKey(ctx: ApiContext, res: Response): Promise<{ signal: AbortSignal; revoked: () => boolean; stop: () => Promise<void> }> {
  const own = ctx.waits.forResponse(res);
  if (!res.req.managedKey) return { signal: own, revoked: () => false, stop: async () => undefined };
  const wait = new AbortController();
  let revoked = false;
  // the response's signal is aborted when it closes, so this listener goes with it
  if (own.aborted) wait.abort();
  else own.addEventListener('abort', () => wait.abort(), { once: true });
  const stop = await onKeyRevoked(ctx, res, () => {
    revoked = true;
    wait.abort();
  });
  return { signal: wait.signal, revoked: () => revoked, stop };
}
