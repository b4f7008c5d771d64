import { STATUSES, type GenerationStatus } from './schemas/generation';

/**
 * Every Redis key and channel the project writes outside BullMQ, all under one prefix.
 * The README's "What Redis holds" table says how each one is bounded.
 */
export function keysFor(prefix: string) {
  const tenantGenerations = (tenant: string, status?: GenerationStatus) => `${prefix}:tenant:${tenant}:gens${status ? `:${status}` : ''}`;
  return {
    generation: (id: string) => `${prefix}:gen:${id}`,
    /** A tenant's generation ids, newest last by id: all of them, or those in one status. */
    tenantGenerations,
    /** The per-status indexes of a tenant, in `STATUSES` order (the transition script moves ids between them). */
    tenantStatusIndexes: (tenant: string) => STATUSES.map((s) => tenantGenerations(tenant, s)),
    /** Every tenant that has records, so maintenance can visit each one. */
    tenants: () => `${prefix}:tenants`,
    generationChannel: (id: string) => `${prefix}:events:gen:${id}`,
    cancelChannel: () => `${prefix}:events:cancel`,
    spool: (id: string) => `${prefix}:spool:${id}`,
    /** File tokens scored by when their files may be removed. */
    fileExpiry: () => `${prefix}:files:expiry`,
    /** `id|tenant` of finished records scored by when their retention ends. */
    recordExpiry: () => `${prefix}:records:expiry`,
    /** Submissions of a tenant in one fixed window. */
    rateLimit: (tenant: string, window: number) => `${prefix}:ratelimit:${tenant}:${window}`,
    /** An `Idempotency-Key` (hashed) of a tenant. */
    idempotency: (tenant: string, keyHash: string) => `${prefix}:idem:${tenant}:${keyHash}`,
    /** The operators' password when ADMIN_PASSWORD is unset: made once, shared by every API process, kept until deleted. */
    adminPassword: () => `${prefix}:admin:password`,
  };
}
export type Keys = ReturnType<typeof keysFor>;
