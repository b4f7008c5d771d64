import { Router } from 'express';
import { RetryDue } from '@imagegen/shared';
import type { ApiContext } from '../context';

/** Delayed job ids read per page when every delayed generation is promoted. */
const PROMOTE_PAGE = 1000;

/**
 * Bull Board's Promote on the generate queue, made to run the retry at once: a retry's due time
 * (RetryDue, kept against workers whose clocks run ahead) would otherwise put the promoted job
 * back to wait out the rest of its backoff. The due times of the job promoted, or of every
 * delayed job for Promote all, are forgotten before the board promotes.
 */
export function promoteRunsAtOnce(ctx: ApiContext): Router {
  const router = Router();
  const retryDue = new RetryDue(ctx.redis, ctx.keys);
  const generate = ctx.queues.generate;
  router.put(`/admin/queues/api/queues/${generate.name}/:jobId/promote`, async (req, _res, next) => {
    const id = String(req.params.jobId);
    // only a job the board will promote: one handed out already keeps the due time it waits for
    if ((await generate.getJobState(id)) === 'delayed') await retryDue.clear([id]);
    next();
  });
  router.put(`/admin/queues/api/queues/${generate.name}/promote`, async (_req, _res, next) => {
    for (let start = 0; ; start += PROMOTE_PAGE) {
      const ids = await generate.getRanges(['delayed'], start, start + PROMOTE_PAGE - 1);
      await retryDue.clear(ids);
      if (ids.length < PROMOTE_PAGE) break;
    }
    next();
  });
  return router;
}
