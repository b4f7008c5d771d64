import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { batchRedeliverSchema, presentBatch } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem, invalid } from '../http/problem';
import { enforceQuota } from '../http/rate-limit';
import { keyRevokedProblem, onKeyRevoked } from '../http/revocation';
import { assertWebhookAllowed } from '../http/webhook-guard';
import { batchFormat, fromCsv, fromJson, fromNdjson, type BatchSubmission } from '../batches/batch-body';
import { BatchesService } from '../batches/batch.service';
import { streamArchive, streamBatchEvents, streamResults } from '../batches/batch-streams';
import { readJsonBody } from '../batches/json-body';
import { limitedBody } from '../http/body-limit';
import { verifyUtf8 } from '../http/utf8';
import { hasBody, idempotencyKeyOf, parseBody, parseQuery, queryWholeNumber, requireContentType } from '../http/validate';
import { WebhookRecoveries } from '../services/webhook-recoveries';

export const batchListQuery = z.strictObject({
  limit: queryWholeNumber(1, 100, 20),
  cursor: z.string().regex(/^batch_[A-Za-z0-9]+$/, { error: 'must be a nextCursor from an earlier page' }).optional(),
});

export function batchesRouter(ctx: ApiContext, json: RequestHandler): Router {
  const router = Router();
  const service = new BatchesService(ctx);
  const recoveries = new WebhookRecoveries(ctx);
  const limit = ctx.config.BATCH_MAX_BODY_BYTES;
  const parseText = express.text({ limit, type: ['application/x-ndjson', 'text/csv'], verify: verifyUtf8 });
  // JSON is parsed as it streams in: one JSON.parse of megabytes would stall every other request
  const readBody = limitedBody(limit, (req, res, next) => {
    if (batchFormat(req) !== 'json') return parseText(req, res, next);
    readJsonBody(req, limit).then((body: unknown) => {
      req.body = body;
      next();
    }, next);
  });

  router.post(
    '/',
    (req, _res, next) => {
      // no body at all is answered 400 by the handler, like an empty one
      if (hasBody(req) && batchFormat(req) === null) return next(new HttpProblem(415, 'Unsupported media type', 'Send the batch as application/json, application/x-ndjson or text/csv'));
      next();
    },
    readBody,
    async (req, res) => {
      const tenant = req.tenant as string;
      const format = batchFormat(req);
      const body: unknown = req.body;
      if (format !== 'json' && typeof body !== 'string') throw invalid('A body is required', [{ path: '(body)', message: 'is required' }]);
      const submission: BatchSubmission = format === 'json' ? await fromJson(body) : format === 'csv' ? await fromCsv(body as string) : await fromNdjson(body as string);
      const idempotencyKey = idempotencyKeyOf(req);
      const idempotency = idempotencyKey === undefined ? undefined : await service.idempotencyKey(tenant, idempotencyKey, body);
      // a repeat of a batch already accepted is answered as it is, costing no quota
      const earlier = idempotency ? await service.replayOf(tenant, idempotency) : null;
      let created: Awaited<ReturnType<typeof service.create>>;
      if (earlier) created = { record: earlier, replayed: true };
      else {
        // a refused webhook costs no quota
        await assertWebhookAllowed(ctx, submission.webhook);
        // a batch of n items counts n against the items quota and the queued cap
        const reservation = await enforceQuota(ctx, tenant, submission.items.length, res);
        // a key revoked while the body was uploaded, or while the items are written, makes no batch
        const revocation = new AbortController();
        const stopWatching = await onKeyRevoked(ctx, res, () => revocation.abort(keyRevokedProblem()));
        try {
          created = await service.create(tenant, submission, { ...(idempotency ? { idempotency } : {}), reservation, signal: revocation.signal });
        } finally {
          await stopWatching();
          // written, the items count in the tenant's queued index themselves (each chunk took its own out)
          await reservation.release();
        }
      }
      const { record, replayed } = created;
      if (replayed) res.setHeader('Idempotent-Replayed', 'true');
      res.setHeader('Location', `${ctx.config.PUBLIC_BASE_URL}/v1/batches/${record.id}`);
      res.status(202).json(presentBatch(record));
    },
  );

  router.get('/', async (req, res) => {
    const { records, nextCursor } = await ctx.batches.list(req.tenant as string, parseQuery(batchListQuery, req.query));
    res.json({ object: 'list', data: records.map(presentBatch), nextCursor, hasMore: nextCursor !== null });
  });

  router.get('/:id', async (req, res) => {
    res.json(presentBatch(await service.get(req.tenant as string, req.params.id as string)));
  });

  router.delete('/:id', async (req, res) => {
    res.json(presentBatch(await service.cancel(req.tenant as string, req.params.id as string)));
  });

  router.get('/:id/results', async (req, res) => {
    await streamResults(ctx, service, await service.get(req.tenant as string, req.params.id as string), res);
  });

  router.get('/:id/archive', async (req, res) => {
    await streamArchive(ctx, service, await service.get(req.tenant as string, req.params.id as string), res);
  });

  // every delivery of the batch and its items that failed, ran out (or waits for a retry) is sent again, in the background
  router.post('/:id/deliveries/redeliver', requireContentType('application/json'), json, async (req, res) => {
    const body = parseBody(batchRedeliverSchema, req.body ?? {});
    const recovery = await recoveries.startBatch(await service.get(req.tenant as string, req.params.id as string), body);
    res.status(202).location(recoveries.url(recovery.id)).json(recovery);
  });

  router.get('/:id/events', async (req, res) => {
    await streamBatchEvents(ctx, await service.get(req.tenant as string, req.params.id as string), res, req.get('last-event-id'));
  });

  return router;
}
