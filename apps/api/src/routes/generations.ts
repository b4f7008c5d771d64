import { Router } from 'express';
import { z } from 'zod';
import { createGenerationSchema, isTerminal, presentGeneration, STATUSES } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { assertWebhookAllowed } from '../http/webhook-guard';
import { enforceQuota } from '../http/rate-limit';
import { keyRevokedProblem, waitWatchingKey } from '../http/revocation';
import { idempotencyKeyOf, parseBody, parseQuery, preferWaitSeconds, queryWholeNumber, requireContentType } from '../http/validate';
import type { RequestHandler } from 'express';
import type { GenerationsService } from '../services/generations';
import { streamGenerationEvents } from './generation-events';

export const generationListQuery = z.strictObject({
  status: z.enum(STATUSES).optional(),
  limit: queryWholeNumber(1, 100, 20),
  cursor: z.string().regex(/^gen_[A-Za-z0-9]+$/, { error: 'must be a nextCursor from an earlier page' }).optional(),
});

export const MAX_PREFER_WAIT_SECONDS = 60;

export function generationsRouter(ctx: ApiContext, service: GenerationsService, json: RequestHandler): Router {
  const router = Router();
  const present = (r: Parameters<typeof presentGeneration>[0]) => presentGeneration(r, ctx.config);

  router.post('/', requireContentType('application/json'), json, async (req, res) => {
    const input = parseBody(createGenerationSchema, req.body);
    const tenant = req.tenant as string;
    const wait = preferWaitSeconds(req.get('prefer'), MAX_PREFER_WAIT_SECONDS);
    const idempotencyKey = idempotencyKeyOf(req);
    const idempotency = idempotencyKey === undefined ? undefined : service.idempotencyKey(tenant, idempotencyKey, input);
    // a repeat of a generation already made is answered (and waited on) without costing quota
    const earlier = idempotency ? await service.replayOf(tenant, idempotency) : null;
    let created: Awaited<ReturnType<typeof service.create>>;
    if (earlier && wait === undefined) created = { record: earlier, replayed: true };
    else {
      // a refused webhook costs no quota
      if (!earlier) await assertWebhookAllowed(ctx, input.webhook);
      const reservation = earlier ? undefined : await enforceQuota(ctx, tenant, 1, res);
      // once written, the record counts in the queued index: the reservation ends there, not after the wait
      const opts = { ...(idempotency ? { idempotency } : {}), ...(reservation ? { afterCreate: () => reservation.release(), reservation } : {}), requestId: req.requestId };
      const waiting = wait === undefined ? undefined : await waitWatchingKey(ctx, res);
      try {
        // revoked in the moment since the key was checked: nothing is made for it
        if (waiting?.revoked()) throw keyRevokedProblem();
        created = waiting === undefined ? await service.create(tenant, input, opts) : await service.createAndWait(tenant, input, (wait as number) * 1000, waiting.signal, opts);
      } finally {
        await Promise.all([reservation?.release(), waiting?.stop()]);
      }
      if (waiting?.revoked()) throw keyRevokedProblem();
    }
    const { record, replayed } = created;
    if (wait !== undefined) res.setHeader('Preference-Applied', `wait=${wait}`);
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', `${ctx.config.PUBLIC_BASE_URL}/v1/generations/${record.id}`);
    res.status(isTerminal(record.status) && wait !== undefined ? 200 : 202).json(present(record));
  });

  router.get('/', async (req, res) => {
    const { records, nextCursor } = await service.list(req.tenant as string, parseQuery(generationListQuery, req.query));
    res.json({ object: 'list', data: records.map(present), nextCursor, hasMore: nextCursor !== null });
  });

  router.get('/:id', async (req, res) => {
    res.json(present(await service.get(req.tenant as string, req.params.id as string)));
  });

  router.delete('/:id', async (req, res) => {
    res.json(present(await service.cancel(req.tenant as string, req.params.id as string)));
  });

  router.get('/:id/events', async (req, res) => {
    const record = await service.get(req.tenant as string, req.params.id as string);
    await streamGenerationEvents(ctx, record, res, req.get('last-event-id'));
  });

  return router;
}
