import { createHmac, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { compose, NOW_MS } from '../records/lua/pieces';

/** After a rotation the previous secret keeps signing this long. */
export const SECRET_OVERLAP_SECONDS = 24 * 3600;

/** How long a process uses the master secret it holds before it checks that Redis still holds it too. */
export const MASTER_CHECK_MS = 10_000;

/**
 * Retires the current version (it keeps signing until the overlap ends, by Redis time) and
 * makes the next one current. KEYS[1] version counter, KEYS[2] retired set; ARGV[1] overlap ms.
 */
const ROTATE_LUA = compose(
  NOW_MS,
  `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = nowMs()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), tostring(current))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(current + 1))
return current + 1
`,
);

/** The versions that sign now: the current one first, then retired ones still in their overlap. */
const SIGNING_VERSIONS_LUA = compose(
  NOW_MS,
  `
local current = redis.call('GET', KEYS[1]) or '0'
local now = nowMs()
local out = { current }
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')) do
  if v ~= current then table.insert(out, v) end
end
return out
`,
);

type SecretsRedis = Redis & {
  imagegenRotateSecret(versionKey: string, retiredKey: string, overlapMs: number): Promise<number>;
  imagegenSigningVersions(versionKey: string, retiredKey: string): Promise<string[]>;
};

/**
 * Per-tenant webhook signing secrets (`whsec_` + base64 of 32 bytes), derived by HMAC from one
 * master secret: WEBHOOK_SECRET when set, else one made at random and kept in Redis (the first
 * process to start makes it, every other one reads the same). Only a version counter per tenant
 * is stored, never a tenant's secret itself.
 */
export class WebhookSecrets {
  private readonly redis: SecretsRedis;
  private masterSecret?: Promise<Buffer>;
  private masterCheckedAt = 0;
  private readonly cache = new Map<string, { secrets: Promise<string[]>; until: number }>();

  /**
   * `signingCacheMs` > 0 keeps each tenant's signing secrets that long in this process (for
   * senders under load); call `forget` when a rotation is announced so it takes effect at once.
   */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly configured?: string,
    private readonly signingCacheMs = 0,
    private readonly masterCheckMs = MASTER_CHECK_MS,
  ) {
    if (!('imagegenRotateSecret' in redis)) {
      redis.defineCommand('imagegenRotateSecret', { numberOfKeys: 2, lua: ROTATE_LUA });
      redis.defineCommand('imagegenSigningVersions', { numberOfKeys: 2, lua: SIGNING_VERSIONS_LUA });
    }
    this.redis = redis as SecretsRedis;
  }

  /**
   * The master secret: WEBHOOK_SECRET, or the one kept in Redis, checked again every
   * `masterCheckMs`. Should Redis lose it (a flush, a failover without persistence), the
   * first process to check puts back the one it holds, so every tenant's secret stays what
   * its receivers verify with; a process that cannot reach Redis keeps the one it holds.
   */
  master(): Promise<Buffer> {
    if (this.configured) return (this.masterSecret ??= Promise.resolve(Buffer.from(this.configured, 'utf8')));
    const now = Date.now();
    if (this.masterSecret && now - this.masterCheckedAt < this.masterCheckMs) return this.masterSecret;
    this.masterCheckedAt = now;
    const held = this.masterSecret;
    const checked = this.loadMaster(held).catch((err: unknown) => {
      if (held) return held;
      if (this.masterSecret === checked) this.masterSecret = undefined;
      throw err;
    });
    this.masterSecret = checked;
    return checked;
  }

  /**
   * Checks the master every `masterCheckMs` whether or not anything is signed meanwhile, so a
   * master Redis lost is put back within that time, before a process starting then makes a new one
   * (which would change every tenant's secret). Returns the stop.
   */
  keepMaster(): () => void {
    if (this.configured) return () => undefined;
    // twice per check time: a tick just short of it finds the last check too recent and skips
    const timer = setInterval(() => void this.master().catch(() => undefined), Math.max(1, this.masterCheckMs / 2)).unref();
    return () => clearInterval(timer);
  }

  private async loadMaster(held: Promise<Buffer> | undefined): Promise<Buffer> {
    const key = this.keys.webhookMasterSecret();
    // the first process wins (or, after a loss, the first to check puts its own back); every other one adopts it
    const candidate = held ? (await held).toString('base64') : randomBytes(32).toString('base64');
    await this.redis.set(key, candidate, 'NX');
    const stored = await this.redis.get(key);
    if (!stored) throw new Error('webhook master secret vanished from Redis');
    return Buffer.from(stored, 'base64');
  }

  async current(tenant: string): Promise<string> {
    const [version, master] = await Promise.all([this.redis.get(this.keys.webhookSecretVersion(tenant)), this.master()]);
    return deriveTenantSecret(master, tenant, Number(version ?? 0));
  }

  /** Every secret that signs a delivery now (the current one, then any in their overlap). */
  signing(tenant: string): Promise<string[]> {
    if (this.signingCacheMs <= 0) return this.loadSigning(tenant);
    const now = Date.now();
    const hit = this.cache.get(tenant);
    if (hit && hit.until > now) return hit.secrets;
    if (this.cache.size >= 10_000) this.cache.clear();
    const secrets = this.loadSigning(tenant);
    this.cache.set(tenant, { secrets, until: now + this.signingCacheMs });
    secrets.catch(() => this.cache.delete(tenant));
    return secrets;
  }

  forget(tenant: string): void {
    this.cache.delete(tenant);
  }

  forgetAll(): void {
    this.cache.clear();
  }

  private async loadSigning(tenant: string): Promise<string[]> {
    const [versions, master] = await Promise.all([
      this.redis.imagegenSigningVersions(this.keys.webhookSecretVersion(tenant), this.keys.webhookSecretRetired(tenant)),
      this.master(),
    ]);
    return versions.map((v) => deriveTenantSecret(master, tenant, Number(v)));
  }

  /**
   * A new current secret; the previous one keeps signing for SECRET_OVERLAP_SECONDS. Announced on
   * keys.webhookSecretRotations() so senders caching the old set sign with the new one at once.
   */
  async rotate(tenant: string, overlapSeconds = SECRET_OVERLAP_SECONDS): Promise<string> {
    const [version, master] = await Promise.all([
      this.redis.imagegenRotateSecret(this.keys.webhookSecretVersion(tenant), this.keys.webhookSecretRetired(tenant), overlapSeconds * 1000),
      this.master(),
    ]);
    await this.redis.publish(this.keys.webhookSecretRotations(), tenant);
    return deriveTenantSecret(master, tenant, Number(version));
  }
}

export function deriveTenantSecret(master: Buffer, tenant: string, version: number): string {
  const key = createHmac('sha256', master).update(`imagegen webhook signing secret\0${tenant}\0${version}`).digest();
  return `whsec_${key.toString('base64')}`;
}
