import { z } from 'zod';
import { parseQuotaOverrides } from './services/quotas';
import { envBool, commonEnvShape, isTenantName, TENANT_RULE, webhookEnvShape, envInt, envOptionalString, envString, generatorEnvShape, MAX_TIMER_MS, parseEnv, redisSettings, refineStorageEnv, resolveFilesBaseUrl, resolvePublicBaseUrl, storageEnvShape } from '@imagegen/shared';

export interface ApiKey {
  tenant: string;
  key: string;
}

/**
 * `tenant:key` pairs, comma-separated. A key names one tenant only; problems name the pair's
 * position or the tenants, never the key.
 */
export function parseApiKeys(raw: string): { keys: ApiKey[]; problems: string[] } {
  const problems: string[] = [];
  const tenantsByKey = new Map<string, string[]>();
  raw
    .split(',')
    .map((pair) => pair.trim())
    .forEach((pair, index) => {
      if (!pair) return;
      const at = pair.indexOf(':');
      const tenant = pair.slice(0, Math.max(at, 0)).trim();
      const key = pair.slice(at + 1).trim();
      if (at < 0 || !tenant || !key) {
        problems.push(`pair ${index + 1} is not tenant:key`);
        return;
      }
      if (!isTenantName(tenant)) {
        problems.push(`tenant of pair ${index + 1} ${TENANT_RULE}`);
        return;
      }
      const tenants = tenantsByKey.get(key) ?? [];
      if (!tenants.includes(tenant)) tenants.push(tenant);
      tenantsByKey.set(key, tenants);
    });
  const keys: ApiKey[] = [];
  for (const [key, tenants] of tenantsByKey) {
    if (tenants.length > 1) problems.push(`key given to ${tenants.length === 2 ? 'two' : tenants.length} tenants (${tenants.join(', ')})`);
    else keys.push({ tenant: tenants[0]!, key });
  }
  return { keys, problems };
}

/** Every variable the API reads. */
export const apiEnvShape = {
  ...commonEnvShape,
  ...generatorEnvShape,
  ...webhookEnvShape,
  ...storageEnvShape,
  HOST: envString('0.0.0.0'),
  API_KEYS: envString('').transform((raw, ctx) => {
    const { keys, problems } = parseApiKeys(raw);
    for (const message of problems) ctx.addIssue({ code: 'custom', message });
    return keys;
  }),
  ADMIN_USER: envString('admin'),
  ADMIN_PASSWORD: envOptionalString(),
  /** Bull Board shows the queues but offers no retry, promote, clean or remove. */
  ADMIN_READ_ONLY: envBool(false),
  RATE_LIMIT_PER_MINUTE: envInt(600, 1),
  /** Items per tenant per minute (a batch of n items counts n). */
  QUOTA_ITEMS_PER_MINUTE: envInt(100_000, 1),
  /** Items a tenant may have queued or running at once. */
  QUOTA_MAX_QUEUED: envInt(100_000, 1),
  /** Per-tenant quotas: `tenant:submissions=N/items=N/queued=N,...` (any of the three). */
  QUOTA_OVERRIDES: envString('').transform((raw, ctx) => {
    const { overrides, problems } = parseQuotaOverrides(raw, isTenantName);
    for (const message of problems) ctx.addIssue({ code: 'custom', message });
    return overrides;
  }),
  /** How long the seed-compatible endpoint waits before answering 202 and letting the generation go on. */
  SYNC_WAIT_TIMEOUT_MS: envInt(120_000, 100, MAX_TIMER_MS),
  MAX_BODY_BYTES: envInt(1024 * 1024, 1024),
  /** Body limit of `POST /v1/batches`: 50,000 ordinary items fit several times over. */
  BATCH_MAX_BODY_BYTES: envInt(32 * 1024 * 1024, 1024),
};

// also when other settings are bad: every problem is named at once
const apiEnvSchema = z.object(apiEnvShape).superRefine(refineStorageEnv, { when: () => true });

export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env) {
  const { API_KEYS, ...raw } = parseEnv(apiEnvSchema, env);
  const publicBaseUrl = resolvePublicBaseUrl(raw.PUBLIC_BASE_URL, raw.PORT);
  return {
    ...raw,
    ...redisSettings(raw),
    PUBLIC_BASE_URL: publicBaseUrl,
    /** Where every file URL handed out starts. */
    filesBaseUrl: resolveFilesBaseUrl(publicBaseUrl, raw.S3_PUBLIC_BASE_URL),
    apiKeys: API_KEYS,
  };
}
