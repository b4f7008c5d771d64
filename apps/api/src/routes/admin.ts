import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router } from 'express';
import { publicPathPrefix } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { basicAuth } from '../http/auth';

/** Bull Board over every queue, behind the operator credentials. */
export function adminRouter(ctx: ApiContext): Router {
  const board = new ExpressAdapter();
  // the page loads its scripts and API through PUBLIC_BASE_URL, path prefix included (a proxy strips it)
  board.setBasePath(`${publicPathPrefix(ctx.config.PUBLIC_BASE_URL)}/admin/queues`);
  createBullBoard({
    queues: Object.values(ctx.queues).map((q) => new BullMQAdapter(q)),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'imagegen' } },
  });
  const router = Router();
  router.use('/admin', basicAuth(ctx.config.ADMIN_USER, ctx.adminPassword));
  router.use('/admin/queues', board.getRouter() as Router);
  return router;
}
