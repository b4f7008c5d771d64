import { z } from 'zod';

const optional = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const envSchema = z.object({
  IMAGEGEN_URL: optional,
  IMAGEGEN_API_KEY: optional,
  IMAGEGEN_ADMIN_USER: optional,
  IMAGEGEN_ADMIN_PASSWORD: optional,
});

/** The CLI's environment; flags override each value. */
export type CliEnv = z.output<typeof envSchema>;

export function loadCliEnv(env: Record<string, string | undefined> = process.env): CliEnv {
  return envSchema.parse(env);
}

export const DEFAULT_URL = 'http://localhost:3000';
