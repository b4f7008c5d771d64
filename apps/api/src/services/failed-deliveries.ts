import { z } from 'zod';
import { isRecoverable, RECOVERABLE_STATES, type Delivery, type failedDeliverySchema } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { queryWholeNumber } from '../http/validate';

export const failedDeliveriesQuery = z.strictObject({
  state: z.enum(RECOVERABLE_STATES).optional(),
  limit: queryWholeNumber(1, 100, 20),
  cursor: z.string().regex(/^\d{1,16}$/, { error: 'must be a nextCursor from an earlier page' }).optional(),
});

type Row = z.output<typeof failedDeliverySchema>;

/**
 * A page of the tenant's deliveries that did not arrive (now failed or exhausted), newest ending
 * first, read off the index a recovery reads: `limit` index entries (and the rest of the last
 * one's millisecond) and their deliveries, whatever the history. An entry whose delivery has
 * arrived since, or is under way again, is left out, so a page can come back short.
 */
export async function listFailedDeliveries(ctx: ApiContext, tenant: string, query: z.output<typeof failedDeliveriesQuery>) {
  const page = await ctx.deliveries.endedPageNewestFirst(tenant, query.cursor === undefined ? null : Number(query.cursor), query.limit);
  const loaded = await ctx.deliveries.loadMany(page.entries);
  const data = page.entries.flatMap((entry, i) => {
    const d = loaded[i];
    const wanted = d && d.tenant === tenant && (query.state ? d.state === query.state : isRecoverable(d.state));
    return wanted ? [rowOf(d, entry.at)] : [];
  });
  // a full page may be the last one: asked, rather than answered with an empty page to follow
  const more = page.last !== null && page.entries.length >= query.limit && (await ctx.deliveries.endedBefore(tenant, page.last));
  return { object: 'list' as const, data, nextCursor: more ? String(page.last) : null, hasMore: more };
}

function rowOf(d: Delivery, endedAt: number): Row {
  return {
    id: d.id,
    event: d.event,
    webhookId: d.webhookId,
    ...(d.subject.startsWith('batch_') ? { batchId: d.subject } : { generationId: d.subject }),
    state: d.state as Row['state'],
    attempts: d.attempts,
    endedAt: new Date(endedAt).toISOString(),
    ...(d.lastStatus !== undefined ? { status: d.lastStatus } : {}),
    ...(d.lastError !== undefined ? { error: d.lastError } : {}),
  };
}
