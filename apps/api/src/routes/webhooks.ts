import { Router } from 'express';
import type { ApiContext } from '../context';

/** The caller's webhook signing secret (`whsec_…`), and its rotation. */
export function webhooksRouter(ctx: ApiContext): Router {
  const router = Router();

  router.get('/secret', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: await ctx.webhookSecrets.current(req.tenant as string) });
  });

  // the previous secret keeps signing (a second signature) for 24 h, so receivers can switch at leisure
  router.post('/secret/rotate', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ secret: await ctx.webhookSecrets.rotate(req.tenant as string) });
  });

  return router;
}
