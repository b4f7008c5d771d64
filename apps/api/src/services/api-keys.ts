import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { composeLua, NOW_MS, type apiKeySchema, type Keys } from '@imagegen/shared';

/** Keys look like `ig_<prefix>_<secret>`: the prefix names the key (lists, logs), the secret is 256 random bits. */
const KEY_PATTERN = /^ig_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** Whether `s` is shaped like a managed key (valid or not). */
export const isManagedKeyShape = (s: string): boolean => KEY_PATTERN.test(s);
/** The prefix (public name) of a managed key, or undefined for any other string. */
export const managedKeyPrefix = (s: string): string | undefined => KEY_PATTERN.exec(s)?.[1];
const ID_PATTERN = /^key_([0-9a-f]{16})$/;

/** Most managed keys one tenant may hold at once: keeps each tenant's list bounded. */
export const MAX_KEYS_PER_TENANT = 100;

export type ApiKeyInfo = z.output<typeof apiKeySchema>;

export type CreatedKey = ApiKeyInfo & { key: string };

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Writes a key and indexes it, refusing past the tenant's cap.
 * KEYS[1] key hash, KEYS[2] tenant's keys, KEYS[3] every key; ARGV[1] prefix, ARGV[2] tenant,
 * ARGV[3] id, ARGV[4] SHA-256 (hex), ARGV[5] cap. Returns the creation time (ms) or 0 when full.
 */
const CREATE_KEY_LUA = composeLua(
  NOW_MS,
  `
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
local now = nowMs()
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'tenant', ARGV[2], 'hash', ARGV[4], 'createdAt', tostring(now))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return now
`,
);

/**
 * Removes a key if it belongs to the tenant, and tells every API process (streams opened with it
 * end). Marks the deployment as one that asks for keys: while any key exists the index says so,
 * and the mark keeps saying it once the last is gone. KEYS as above, KEYS[4] the keys-required
 * mark; ARGV[1] prefix, ARGV[2] tenant, ARGV[3] the revocations channel. Returns 1 when revoked.
 * The key is deleted first: Redis full (maxmemory) refuses a script only at its first write, and
 * only a write that adds memory, so a revocation still runs whole then.
 */
const REVOKE_KEY_LUA = `
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[4], '1')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
`;

type KeysRedis = Redis & {
  imagegenCreateApiKey(k1: string, k2: string, k3: string, prefix: string, tenant: string, id: string, hash: string, cap: number): Promise<number>;
  imagegenRevokeApiKey(k1: string, k2: string, k3: string, k4: string, prefix: string, tenant: string, channel: string): Promise<number>;
};

/**
 * API keys managed at run time, beside the ones in API_KEYS. Only a SHA-256 of each key is
 * kept (the key has 256 random bits, so a fast hash is enough). Every check reads Redis (no
 * cache), so a revoked key is refused by every API process at once.
 */
export class ApiKeyStore {
  private readonly redis: KeysRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    if (!('imagegenCreateApiKey' in redis)) {
      redis.defineCommand('imagegenCreateApiKey', { numberOfKeys: 3, lua: CREATE_KEY_LUA });
      redis.defineCommand('imagegenRevokeApiKey', { numberOfKeys: 4, lua: REVOKE_KEY_LUA });
    }
    this.redis = redis as KeysRedis;
  }

  private slots(prefix: string, tenant: string): [string, string, string] {
    return [this.keys.apiKey(prefix), this.keys.tenantApiKeys(tenant), this.keys.apiKeyIndex()];
  }

  /** A new key for `tenant`, or null when the tenant already holds MAX_KEYS_PER_TENANT. */
  async create(tenant: string): Promise<CreatedKey | null> {
    const prefix = randomBytes(8).toString('hex');
    const key = `ig_${prefix}_${randomBytes(32).toString('base64url')}`;
    const id = `key_${prefix}`;
    const at = await this.redis.imagegenCreateApiKey(...this.slots(prefix, tenant), prefix, tenant, id, digest(key).toString('hex'), MAX_KEYS_PER_TENANT);
    if (!at) return null;
    return { id, key, prefix, createdAt: new Date(Number(at)).toISOString() };
  }

  async list(tenant: string): Promise<ApiKeyInfo[]> {
    const entries = await this.redis.zrange(this.keys.tenantApiKeys(tenant), '0', '-1', 'WITHSCORES');
    const out: ApiKeyInfo[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      const prefix = entries[i]!;
      out.push({ id: `key_${prefix}`, prefix, createdAt: new Date(Number(entries[i + 1])).toISOString() });
    }
    return out;
  }

  /** True when the tenant held that key (it no longer works anywhere). */
  async revoke(tenant: string, id: string): Promise<boolean> {
    const m = ID_PATTERN.exec(id);
    if (!m) return false;
    return (await this.redis.imagegenRevokeApiKey(...this.slots(m[1]!, tenant), this.keys.apiKeysRequired(), m[1]!, tenant, this.keys.apiKeyRevocations())) === 1;
  }

  /** The tenant a presented key belongs to, or null. */
  async tenantOf(key: string): Promise<string | null> {
    const m = KEY_PATTERN.exec(key);
    if (!m) return null;
    const [tenant, hash] = await this.redis.hmget(this.keys.apiKey(m[1]!), 'tenant', 'hash');
    if (!tenant || !hash || hash.length !== 64) return null;
    return timingSafeEqual(Buffer.from(hash, 'hex'), digest(key)) ? tenant : null;
  }

  /** Whether the managed key named by `prefix` still exists. */
  async exists(prefix: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.apiKey(prefix))) === 1;
  }

  /**
   * Whether managed keys are in use: one exists, or one ever did (revoking the last key does not
   * open the API to anyone). Without, and without API_KEYS, the API is in open dev mode.
   */
  async required(): Promise<boolean> {
    return (await this.redis.exists(this.keys.apiKeyIndex(), this.keys.apiKeysRequired())) > 0;
  }
}
