import type { Redis } from 'ioredis';
import type { Keys } from '../keys';

/** Forgets a tenant once it has no records left; atomic, so a record created meanwhile keeps it. */
const FORGET_TENANT_LUA = `
if redis.call('ZCARD', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
`;

type ForgetRedis = Redis & { imagegenForgetTenant(index: string, tenants: string, tenant: string): Promise<number> };

/**
 * Takes each tenant off the set of tenants with records (which maintenance visits) once it has
 * none left: whatever removes records calls it, so the set holds no tenant it no longer needs.
 */
export async function forgetTenantsWithoutRecords(redis: Redis, keys: Keys, tenants: Iterable<string>): Promise<void> {
  if (!('imagegenForgetTenant' in redis)) redis.defineCommand('imagegenForgetTenant', { numberOfKeys: 2, lua: FORGET_TENANT_LUA });
  for (const tenant of new Set(tenants)) await (redis as ForgetRedis).imagegenForgetTenant(keys.tenantGenerations(tenant), keys.tenants(), tenant);
}
