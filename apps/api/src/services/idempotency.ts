import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { IdempotencyClaim, Keys } from '@imagegen/shared';
import { HttpProblem, invalid } from '../http/problem';
import { jsonDigest, jsonDigestSync } from './json-digest';

/** How long a key maps to its generation once that generation is enqueued. */
export const IDEMPOTENCY_SECONDS = 24 * 3600;

/** An Idempotency-Key as it may be sent (a header value, so each character is one code unit). */
export const idempotencyKeySchema = z
  .string()
  .min(1)
  .max(255)
  .describe(`Makes the request safe to retry: for ${IDEMPOTENCY_SECONDS / 3600} h the same key with the same body is answered with what the first request made (Idempotent-Replayed: true), with another body 409`);
const KEY_RULE = `must be ${idempotencyKeySchema.minLength} to ${idempotencyKeySchema.maxLength} characters`;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `Idempotency-Key`: the key (hashed, per tenant) is claimed in the same step that creates
 * the generation, holding `<digest of the body>|<generation id>`. A repeat with the same body
 * (member order aside: it is hashed in canonical form) gets that generation; with another body, 409.
 */
export class IdempotencyKey {
  private readonly redisKey: string;

  private constructor(
    keys: Keys,
    tenant: string,
    key: string,
    private readonly bodyHash: string,
  ) {
    this.redisKey = keys.idempotency(tenant, sha256(key));
  }

  private static check(key: string): void {
    if (!idempotencyKeySchema.safeParse(key).success) throw invalid(`Idempotency-Key ${KEY_RULE}`, [{ path: 'Idempotency-Key', message: KEY_RULE }]);
  }

  /** For a body of kilobytes (one generation): hashed at once. */
  static of(keys: Keys, tenant: string, key: string, body: unknown): IdempotencyKey {
    IdempotencyKey.check(key);
    return new IdempotencyKey(keys, tenant, key, jsonDigestSync(body));
  }

  /** For a body of up to megabytes (a batch): the same digest, hashed a piece at a time. */
  static async ofLarge(keys: Keys, tenant: string, key: string, body: unknown): Promise<IdempotencyKey> {
    IdempotencyKey.check(key);
    return new IdempotencyKey(keys, tenant, key, await jsonDigest(body));
  }

  /**
   * The id the key already maps to, read without claiming anything (so a repeat can be answered
   * before it is counted against quotas); undefined when the key is free. 409 when it was used
   * with another body.
   */
  async peek(redis: Redis): Promise<string | undefined> {
    const value = await redis.get(this.redisKey);
    return value === null ? undefined : this.heldGeneration(value);
  }

  /** The claim a create makes for `generationId`, living `ttlSeconds`. */
  claim(generationId: string, ttlSeconds: number): IdempotencyClaim {
    return { key: this.redisKey, value: `${this.bodyHash}|${generationId}`, ttlSeconds };
  }

  /** The generation a held key maps to; 409 when it was used with another body. */
  heldGeneration(value: string): string {
    const sep = value.indexOf('|');
    if (value.slice(0, sep) !== this.bodyHash) throw new HttpProblem(409, 'Conflict', 'This Idempotency-Key was already used with a different body');
    return value.slice(sep + 1);
  }
}
