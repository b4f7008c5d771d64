import { Router, type RequestHandler } from 'express';
import { generationRequestSchema, presentGeneration } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem } from '../http/problem';
import { enforceQuota } from '../http/rate-limit';
import { keyRevokedProblem, waitWatchingKey } from '../http/revocation';
import { parseBody, requireContentType } from '../http/validate';
import type { GenerationsService } from '../services/generations';

/**
 * The seed-compatible endpoint: same path, body and headers. It waits for the
 * generation and answers `{ downloadUrl }`; past the wait limit, 202 and it goes on.
 */
export function seedRouter(ctx: ApiContext, service: GenerationsService, json: RequestHandler): Router {
  const router = Router();
  router.post('/api/odin/v3/tools/image-generator', requireContentType('application/json'), json, async (req, res) => {
    const request = parseBody(generationRequestSchema, req.body);
    const reservation = await enforceQuota(ctx, req.tenant as string, 1, res);
    let created: Awaited<ReturnType<typeof service.createAndWait>>;
    const waiting = await waitWatchingKey(ctx, res);
    try {
      // revoked in the moment since the key was checked: nothing is made for it
      if (waiting.revoked()) throw keyRevokedProblem();
      created = await service.createAndWait(req.tenant as string, { ...request, priority: 'normal' }, ctx.config.SYNC_WAIT_TIMEOUT_MS, waiting.signal, {
        afterCreate: () => reservation.release(),
        reservation,
        requestId: req.requestId,
      });
    } finally {
      await Promise.all([reservation.release(), waiting.stop()]);
    }
    if (waiting.revoked()) throw keyRevokedProblem();
    const { record } = created;
    const statusUrl = `${ctx.config.PUBLIC_BASE_URL}/v1/generations/${record.id}`;
    if (record.status === 'completed' && record.result) {
      const { result } = presentGeneration(record, ctx.config);
      res.json({ downloadUrl: result?.image.url, id: record.id, statusUrl, thumbnails: result?.thumbnails, placeholder: result?.placeholder });
      return;
    }
    if (record.status === 'failed' || record.status === 'cancelled') {
      const why = record.error ? `${record.error.code}: ${record.error.message}` : record.status;
      throw new HttpProblem(502, 'Generation failed', `Generation ${record.id} ${record.status}: ${why}`);
    }
    // still running: where to follow it, and when asking again is worth it
    res.setHeader('Location', statusUrl);
    res.setHeader('Retry-After', '5');
    res.status(202).json({ id: record.id, status: record.status, statusUrl });
  });
  return router;
}
