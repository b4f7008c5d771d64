import { z } from 'zod';

/**
 * A tenant name: it becomes part of Redis key names and URLs, so no `:` (the key separator),
 * no glob characters, no slashes or spaces.
 */
export const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const TENANT_RULE = 'must be 1-64 letters, digits, _ . - (starting with a letter or digit)';

export const tenantSchema = z.string().regex(TENANT_PATTERN, TENANT_RULE);

export const isTenantName = (s: string): boolean => TENANT_PATTERN.test(s);
