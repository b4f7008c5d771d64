import { Router } from 'express';
import { contentTypeFor, isValidStorageKey } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { notFound } from '../http/problem';

/**
 * Result files, public by URL: the path carries 128 random bits, so it is unguessable,
 * and only exact file names resolve (nothing lists). Files never change once written.
 */
export function filesRouter(ctx: ApiContext): Router {
  const router = Router();
  router.get('/files/:token/:name', async (req, res) => {
    const key = `${req.params.token}/${req.params.name}`;
    if (!isValidStorageKey(key)) throw notFound('File');
    const stat = await ctx.storage.stat(key);
    if (!stat) throw notFound('File');
    res.set({
      'Content-Type': contentTypeFor(key),
      'Content-Length': String(stat.bytes),
      'Cache-Control': 'public, max-age=31536000, immutable',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = ctx.storage.createReadStream(key);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
  return router;
}
