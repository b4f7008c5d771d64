import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { errorHandler as boardErrorHandler } from '@bull-board/api/dist/handlers/error.js';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type Express, type RequestHandler } from 'express';
import { publicPathPrefix, QUEUES, redisWriteRefusal } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { basicAuth } from '../http/auth';
import { boardPageOffline } from '../http/board-page';
import { promoteRunsAtOnce } from '../http/board-promote';
import { boardProblems } from '../http/board-problems';
import { isRedisDown, unavailable } from '../http/problem';

const QUEUE_DESCRIPTIONS: Record<string, string> = {
  generate: 'One job per generation; the job id is the generation id',
  maintenance: 'Retention and repair sweeps',
  webhooks: 'One job per webhook delivery run (read-only: send again with the API\'s redeliver and recover)',
};

/**
 * Shown, never changed from the board: a webhooks job is the only thing that carries its pending
 * delivery on (one cleaned or removed would leave it pending for good), a recovery's job is its
 * only record, and a promoted delivery retry would wait for its schedule anyway. The API's redeliver and
 * recover routes are how deliveries are sent again.
 */
const READ_ONLY_QUEUES = new Set<string>([QUEUES.webhooks]);

/**
 * Bull Board over every queue, behind the operator credentials. Its JSON API needs Redis: while
 * Redis is away it answers the API's own 503 problem (`redisReady`), not the board's 500.
 */
export function adminRouter(ctx: ApiContext, redisReady: RequestHandler): Router {
  const board = new ExpressAdapter();
  // the page loads its scripts and API through PUBLIC_BASE_URL, path prefix included (a proxy strips it)
  board.setBasePath(`${publicPathPrefix(ctx.config.PUBLIC_BASE_URL)}/admin/queues`);
  createBullBoard({
    // every queue the API holds (the catalog's), generation ids as job ids
    queues: Object.values(ctx.queues).map((q) => new BullMQAdapter(q, { readOnlyMode: ctx.config.ADMIN_READ_ONLY || READ_ONLY_QUEUES.has(q.name), description: QUEUE_DESCRIPTIONS[q.name] ?? '' })),
    serverAdapter: board,
    options: {
      uiConfig: {
        boardTitle: 'imagegen queues',
        environment: { label: ctx.config.NODE_ENV, color: ctx.config.NODE_ENV === 'production' ? '#b91c1c' : '#2563eb', textColor: '#ffffff' },
        miscLinks: [{ text: 'API reference', url: `${publicPathPrefix(ctx.config.PUBLIC_BASE_URL)}/docs` }],
        showMetrics: true,
        hideDocsLink: true,
      },
    },
  });
  // Redis can go in the middle of a board request that passed `redisReady`: the board's own
  // handler would answer that 500 application/json, so it is thrown on to the API's 503 problem
  board.setErrorHandler((err) => {
    // a Redis refusing writes (full) is the API's own answer too: 503 with its longer Retry-After, logged
    if (redisWriteRefusal(err) !== undefined) throw err;
    if (isRedisDown(err) || ctx.redis.status !== 'ready') throw unavailable();
    return boardErrorHandler(err);
  });
  const router = Router();
  router.use('/admin', basicAuth(ctx.config.ADMIN_USER, ctx.adminPassword));
  router.use('/admin/queues/api', redisReady, boardProblems());
  if (!ctx.config.ADMIN_READ_ONLY) router.use(promoteRunsAtOnce(ctx));
  const boardApp = board.getRouter() as Express;
  // an Express app of its own, which would name Express in every answer
  boardApp.disable('x-powered-by');
  router.use('/admin/queues', boardPageOffline(), boardApp);
  return router;
}
