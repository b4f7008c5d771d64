import { z } from 'zod';
import { commonEnvShape, webhookEnvShape, envInt, envOptionalString, envString, generatorEnvShape, MAX_TIMER_MS, parseEnv, resolvePublicBaseUrl } from '@imagegen/shared';

const apiEnvSchema = z.object({
  ...commonEnvShape,
  ...generatorEnvShape,
  ...webhookEnvShape,
  HOST: envString('0.0.0.0'),
  API_KEYS: envString(''),
  ADMIN_USER: envString('admin'),
  ADMIN_PASSWORD: envOptionalString(),
  RATE_LIMIT_PER_MINUTE: envInt(600, 1),
  /** How long the seed-compatible endpoint waits before answering 202 and letting the generation go on. */
  SYNC_WAIT_TIMEOUT_MS: envInt(120_000, 100, MAX_TIMER_MS),
  MAX_BODY_BYTES: envInt(1024 * 1024, 1024),
});

export interface ApiKey {
  tenant: string;
  key: string;
}

function parseApiKeys(raw: string): ApiKey[] {
  return raw
    .split(',')
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf(':');
      if (at <= 0 || at === pair.length - 1) throw new Error('API_KEYS must be comma-separated tenant:key pairs');
      return { tenant: pair.slice(0, at), key: pair.slice(at + 1) };
    });
}

export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env) {
  const raw = parseEnv(apiEnvSchema, env);
  return {
    ...raw,
    PUBLIC_BASE_URL: resolvePublicBaseUrl(raw.PUBLIC_BASE_URL, raw.PORT),
    apiKeys: parseApiKeys(raw.API_KEYS),
  };
}
