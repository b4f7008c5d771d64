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
    /** Never written: readiness asks whether it exists, which reaches the node that holds the prefix's keys. */
    readinessProbe: () => `${prefix}:ready-probe`,
    generationChannel: (id: string) => `${prefix}:events:gen:${id}`,
    cancelChannel: () => `${prefix}:events:cancel`,
    spool: (id: string) => `${prefix}:spool:${id}`,
    /** Every spool held, with its size (see SPOOL_LUA). */
    spoolIndex: () => `${prefix}:spools`,
    /** When a generation's retry is due, by Redis's clock (see RetryDue); expires a minute after. */
    generationRetryDue: (id: string) => `${prefix}:gen:${id}:retry-due`,
    /** File tokens scored by when their files may be removed. */
    fileExpiry: () => `${prefix}:files:expiry`,
    /** `id|tenant` of finished records scored by when their retention ends. */
    recordExpiry: () => `${prefix}:records:expiry`,
    /** Where the orphan sweep stopped in each `tenant|status` index (fields), so each run reads a bounded part; expires when sweeps stop. */
    orphanSweepCursor: () => `${prefix}:records:orphan-cursor`,
    /** An `Idempotency-Key` (hashed) of a tenant. */
    idempotency: (tenant: string, keyHash: string) => `${prefix}:idem:${tenant}:${keyHash}`,
    /** Where the API's file URLs start, for workers without a PUBLIC_BASE_URL of their own (webhook bodies carry them); renewed hourly by every API process, expires a day after the last. */
    apiFilesBase: () => `${prefix}:api:files-base`,
    /** The operators' password when ADMIN_PASSWORD is unset: made once, shared by every API process, kept until deleted. */
    adminPassword: () => `${prefix}:admin:password`,
    /** One batch's record (counts, status) as a hash. */
    batch: (id: string) => `${prefix}:batch:${id}`,
    /** A batch's item (generation) ids in submission order: the index is the position. */
    batchItems: (id: string) => `${prefix}:batch:${id}:items`,
    /** A batch's items in the order they finished (a stream of index, id, status), so an events listener resumes where it left off; goes with the batch. */
    batchFinished: (id: string) => `${prefix}:batch:${id}:finished`,
    /** A tenant's batch ids, newest last by id. */
    tenantBatches: (tenant: string) => `${prefix}:tenant:${tenant}:batches`,
    /** `tenant|batchId` of batches whose items are not all released to the generate queue yet. */
    batchesFeeding: () => `${prefix}:batches:feeding`,
    /** `tenant|batchId` of batches being written (not confirmed yet): the feeder removes what one that is gone unconfirmed wrote. */
    batchesWriting: () => `${prefix}:batches:writing`,
    /** Held by the one worker that feeds batch items into the generate queue. */
    batchFeederLock: () => `${prefix}:batches:feeder`,
    /** `id|tenant` of finished batches scored by when their retention ends. */
    batchExpiry: () => `${prefix}:batches:expiry`,
    /** Count changes and item completions of one batch, for live listeners. */
    batchChannel: (id: string) => `${prefix}:events:batch:${id}`,
    /** Stream of webhook events, appended by the record transition in the same script (the outbox). */
    webhookOutbox: () => `${prefix}:webhooks:outbox`,
    /** Present while the outbox dispatcher (consumer) of that name runs: when it expires, what it had read is taken over at once. */
    webhookDispatcherAlive: (consumer: string) => `${prefix}:webhooks:dispatcher:${consumer}`,
    /** Master secret every tenant's signing secret derives from, when WEBHOOK_SECRET is not set. */
    webhookMasterSecret: () => `${prefix}:webhooks:master`,
    /** A tenant's current signing-secret version (a counter; absent = version 0). */
    webhookSecretVersion: (tenant: string) => `${prefix}:webhooks:secret:${tenant}:version`,
    /** Earlier versions that still sign during the rotation overlap, scored by when they stop. */
    webhookSecretRetired: (tenant: string) => `${prefix}:webhooks:secret:${tenant}:retired`,
    /** Tenants whose signing secret was just rotated: processes caching it forget it. */
    webhookSecretRotations: () => `${prefix}:events:webhook-secret-rotated`,
    /** Deliveries and attempts of one generation's webhook; lives as long as the record. */
    generationDeliveries: (id: string) => `${prefix}:deliveries:gen:${id}`,
    /** Deliveries and attempts of one batch's webhook. */
    batchDeliveries: (id: string) => `${prefix}:deliveries:batch:${id}`,
    /** `subject|deliveryId` of a tenant's deliveries that ended failed or exhausted, scored by when (Redis time): what a recovery reads. */
    tenantEndedDeliveries: (tenant: string) => `${prefix}:tenant:${tenant}:deliveries:ended`,
    /** Deliveries in flight to one endpoint host (host:port), scored by when their lease ends. */
    webhookHostInFlight: (host: string) => `${prefix}:webhooks:host:${host}:inflight`,
    /** Deliveries waiting for a slot of one endpoint host, oldest first: woken as slots free. */
    webhookHostParked: (host: string) => `${prefix}:webhooks:host:${host}:parked`,
    /** Consecutive failures of one endpoint host. */
    webhookHostFailures: (host: string) => `${prefix}:webhooks:host:${host}:failures`,
    /** Present while one endpoint host's circuit is open (its deliveries wait). */
    webhookHostCircuit: (host: string) => `${prefix}:webhooks:host:${host}:open`,
    /** A managed API key (hash: id, tenant, SHA-256 of the key, createdAt), by its public prefix; kept until revoked. */
    apiKey: (keyPrefix: string) => `${prefix}:apikeys:key:${keyPrefix}`,
    /** A tenant's managed key prefixes scored by creation time; each entry removed with its key. */
    tenantApiKeys: (tenant: string) => `${prefix}:apikeys:tenant:${tenant}`,
    /** Pub/sub channel: the prefix of each managed key revoked (streams opened with it end). */
    apiKeyRevocations: () => `${prefix}:events:apikey-revoked`,
    /** Every managed key prefix. */
    apiKeyIndex: () => `${prefix}:apikeys:all`,
    /**
     * Set when a managed key is revoked, kept for good (the deployment's): a key is then asked for
     * even once the last is gone. Only deleting it by hand opens open dev mode again.
     */
    apiKeysRequired: () => `${prefix}:apikeys:required`,
    /** Pub/sub channel of one API process: the ends of the generations its requests wait on (see WaiterChannel). */
    waiterChannel: (processId: string) => `${prefix}:waiters:${processId}`,
    /** A tenant's count in one per-minute quota window (the limit is in the name); expires with the window. */
    quotaCounter: (name: string, tenant: string) => `${prefix}:quota:${name}:${tenant}`,
    /** Items a tenant's submissions are about to enqueue, reserved against its queued cap (`<request>|<n>` scored by expiry). */
    queuedReservations: (tenant: string) => `${prefix}:tenant:${tenant}:reserved`,
    /** A tenant's usage counters, fields `<YYYY-MM-DD>:<metric>`; old days trimmed by the sweep, the key expires when idle. */
    usage: (tenant: string) => `${prefix}:usage:${tenant}`,
  };
}
export type Keys = ReturnType<typeof keysFor>;
