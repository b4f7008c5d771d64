/** A batch as the feeder sees it: items it may still release and items released but not finished. */
export interface FeedState {
  tenant: string;
  batchId: string;
  /** Items not released yet. */
  remaining: number;
  /** Items released and not finished yet. */
  inFlight: number;
}

/**
 * Shares `free` slots of the window: each slot goes to the tenant with the fewest items in
 * flight (granted ones included), and within it to its batch with the fewest, so a tenant with
 * one small batch gets as much as a tenant with a huge one, and a tenant's batches share its
 * part. Ties go in `order`, which the caller rotates so no one is always first.
 * Returns the slots granted per batch id, each as its tenant's items in flight when it was
 * granted (the job's place in the queue: see batchItemJobOptions).
 */
export function shareWindow(batches: FeedState[], free: number): Map<string, number[]> {
  const grants = new Map<string, number[]>();
  const byTenant = new Map<string, FeedState[]>();
  for (const b of batches) {
    const list = byTenant.get(b.tenant) ?? [];
    list.push(b);
    byTenant.set(b.tenant, list);
  }
  const load = new Map<string, number>();
  for (const [tenant, list] of byTenant) load.set(tenant, list.reduce((n, b) => n + b.inFlight, 0));
  const batchLoad = new Map(batches.map((b) => [b.batchId, b.inFlight]));
  const left = new Map(batches.map((b) => [b.batchId, b.remaining]));
  for (let slot = 0; slot < free; slot++) {
    let bestTenant: string | undefined;
    for (const [tenant, list] of byTenant) {
      if (!list.some((b) => (left.get(b.batchId) ?? 0) > 0)) continue;
      if (bestTenant === undefined || (load.get(tenant) ?? 0) < (load.get(bestTenant) ?? 0)) bestTenant = tenant;
    }
    if (bestTenant === undefined) break;
    let best: FeedState | undefined;
    for (const b of byTenant.get(bestTenant) ?? []) {
      if ((left.get(b.batchId) ?? 0) <= 0) continue;
      if (!best || (batchLoad.get(b.batchId) ?? 0) < (batchLoad.get(best.batchId) ?? 0)) best = b;
    }
    if (!best) break;
    grants.set(best.batchId, [...(grants.get(best.batchId) ?? []), load.get(bestTenant) ?? 0]);
    left.set(best.batchId, (left.get(best.batchId) ?? 0) - 1);
    batchLoad.set(best.batchId, (batchLoad.get(best.batchId) ?? 0) + 1);
    load.set(bestTenant, (load.get(bestTenant) ?? 0) + 1);
  }
  return grants;
}

/** Interleaves per-batch lists: one from each tenant in turn, and within a tenant one from each batch in turn. */
export function interleave<T>(perBatch: { tenant: string; items: T[] }[]): T[] {
  const tenants = new Map<string, T[][]>();
  for (const b of perBatch) tenants.set(b.tenant, [...(tenants.get(b.tenant) ?? []), [...b.items]]);
  const perTenant = [...tenants.values()].map((lists) => {
    const out: T[] = [];
    for (let i = 0; lists.some((l) => l.length > 0); i++) {
      const l = lists[i % lists.length]!;
      const next = l.shift();
      if (next !== undefined) out.push(next);
    }
    return out;
  });
  const out: T[] = [];
  for (let i = 0; perTenant.some((l) => l.length > 0); i++) {
    const next = perTenant[i % perTenant.length]!.shift();
    if (next !== undefined) out.push(next);
  }
  return out;
}
