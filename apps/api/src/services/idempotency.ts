import { createHash } from 'node:crypto';
import type { ApiContext } from '../context';
import { HttpProblem, invalid } from '../http/problem';

const KEEP_SECONDS = 24 * 3600;
/** A claim whose generation is not enqueued yet: as long as a provisional record lives. */
const PENDING_SECONDS = 600;

/** Replaces or deletes the key only if it still holds the value we saw. */
const COMPARE_AND_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3])) end
return 1
`;

export type IdempotencyClaim =
  | { kind: 'new'; confirm(): Promise<void>; release(): Promise<void> }
  | { kind: 'replay'; generationId: string; takeOver(): Promise<IdempotencyClaim | null> };

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `Idempotency-Key`: the first request with a key claims it with a digest of its body; a
 * repeat with the same body gets the same generation, with another body 409. A claim stays
 * pending (short-lived) until its generation is enqueued, so a request that died half-way
 * does not block the key for a day.
 */
export async function claimIdempotencyKey(ctx: ApiContext, tenant: string, key: string, body: unknown, generationId: string): Promise<IdempotencyClaim> {
  if (key.length < 1 || key.length > 255) throw invalid('Idempotency-Key must be 1 to 255 characters', [{ path: 'Idempotency-Key', message: 'must be 1 to 255 characters' }]);
  const redisKey = `${ctx.config.QUEUE_PREFIX}:idem:${tenant}:${sha256(key)}`;
  const bodyHash = sha256(JSON.stringify(body));
  const mine = JSON.stringify({ bodyHash, generationId });
  const cas = (expected: string, next: string, ttl: number) => ctx.redis.eval(COMPARE_AND_SET, 1, redisKey, expected, next, ttl) as Promise<number>;
  const claimed = (): IdempotencyClaim => ({
    kind: 'new',
    confirm: async () => {
      await cas(mine, mine, KEEP_SECONDS);
    },
    release: async () => {
      await cas(mine, '', 0);
    },
  });

  if ((await ctx.redis.set(redisKey, mine, 'EX', PENDING_SECONDS, 'NX')) === 'OK') return claimed();
  const existing = await ctx.redis.get(redisKey);
  if (existing === null) return claimIdempotencyKey(ctx, tenant, key, body, generationId); // expired in between
  const seen = JSON.parse(existing) as { bodyHash: string; generationId: string };
  if (seen.bodyHash !== bodyHash) throw new HttpProblem(409, 'Conflict', 'This Idempotency-Key was already used with a different body');
  return {
    kind: 'replay',
    generationId: seen.generationId,
    // the earlier request never enqueued its generation: this one takes the key over
    takeOver: async () => ((await cas(existing, mine, PENDING_SECONDS)) === 1 ? claimed() : null),
  };
}
