import { z } from 'zod';
import { envBool, commonEnvShape, webhookEnvShape, envInt, envOptionalString, envString, generatorEnvShape, MAX_TIMER_MS, parseEnv, resolvePublicBaseUrl } from '@imagegen/shared';

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
  /** How long the seed-compatible endpoint waits before answering 202 and letting the generation go on. */
  SYNC_WAIT_TIMEOUT_MS: envInt(120_000, 100, MAX_TIMER_MS),
  MAX_BODY_BYTES: envInt(1024 * 1024, 1024),
};

const apiEnvSchema = z.object(apiEnvShape);

export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env) {
  const { API_KEYS, ...raw } = parseEnv(apiEnvSchema, env);
  return {
    ...raw,
    PUBLIC_BASE_URL: resolvePublicBaseUrl(raw.PUBLIC_BASE_URL, raw.PORT),
    apiKeys: API_KEYS,
  };
}
