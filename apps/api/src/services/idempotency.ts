import { createHash } from 'node:crypto';
import type { ApiContext } from '../context';
import { HttpProblem, invalid } from '../http/problem';

const TTL_SECONDS = 24 * 3600;

export type IdempotencyClaim =
  | { kind: 'new'; release(): Promise<void> }
  | { kind: 'replay'; generationId: string };

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `Idempotency-Key`: the first request with a key claims it for 24 h with a digest of its
 * body; a repeat with the same body gets the same generation, with another body 409.
 */
export async function claimIdempotencyKey(ctx: ApiContext, tenant: string, key: string, body: unknown, generationId: string): Promise<IdempotencyClaim> {
  if (key.length < 1 || key.length > 255) throw invalid('Idempotency-Key must be 1 to 255 characters', [{ path: 'Idempotency-Key', message: 'must be 1 to 255 characters' }]);
  const redisKey = `${ctx.config.QUEUE_PREFIX}:idem:${tenant}:${sha256(key)}`;
  const bodyHash = sha256(JSON.stringify(body));
  const claimed = await ctx.redis.set(redisKey, JSON.stringify({ bodyHash, generationId }), 'EX', TTL_SECONDS, 'NX');
  if (claimed === 'OK') return { kind: 'new', release: () => ctx.redis.del(redisKey).then(() => undefined) };
  const existing = JSON.parse((await ctx.redis.get(redisKey)) ?? '{}') as { bodyHash?: string; generationId?: string };
  if (!existing.generationId) return claimIdempotencyKey(ctx, tenant, key, body, generationId); // expired in between
  if (existing.bodyHash !== bodyHash) {
    throw new HttpProblem(409, 'Conflict', 'This Idempotency-Key was already used with a different body');
  }
  return { kind: 'replay', generationId: existing.generationId };
}
