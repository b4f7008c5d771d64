/** Every Redis key and channel the project writes outside BullMQ, all under one prefix. */
export function keysFor(prefix: string) {
  return {
    generation: (id: string) => `${prefix}:gen:${id}`,
    tenantGenerations: (tenant: string) => `${prefix}:tenant:${tenant}:gens`,
    generationChannel: (id: string) => `${prefix}:events:gen:${id}`,
    cancelChannel: () => `${prefix}:events:cancel`,
    spool: (id: string) => `${prefix}:spool:${id}`,
    /** File tokens scored by when their files may be removed. */
    fileExpiry: () => `${prefix}:files:expiry`,
    /** The operators' password when ADMIN_PASSWORD is unset: made once, shared by every API process, kept until deleted. */
    adminPassword: () => `${prefix}:admin:password`,
  };
}
export type Keys = ReturnType<typeof keysFor>;
