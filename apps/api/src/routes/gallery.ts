import path from 'node:path';
import { Router } from 'express';
import { MAX_TOPIC_LENGTH } from '@imagegen/shared';
import type { ApiContext } from '../context';

const GALLERY_DIR = path.resolve(__dirname, '..', '..', 'public', 'gallery');
const THUMBHASH_JS = require.resolve('thumbhash');

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="4" fill="#3b5bdb"/></svg>`;

/**
 * The gallery at `/`: static HTML, CSS and JS (no build step), plus the thumbhash decoder
 * straight from its npm package. `config.json` tells the page whether it must ask for a key, and
 * how long a topic may be.
 */
export function galleryRouter(ctx: ApiContext): Router {
  const router = Router();
  const send = (file: string, type: string) => (_req: unknown, res: import('express').Response) => {
    res.type(type).setHeader('Cache-Control', 'no-cache');
    res.sendFile(file);
  };
  router.get('/', send(path.join(GALLERY_DIR, 'index.html'), 'html'));
  router.get('/gallery/gallery.js', send(path.join(GALLERY_DIR, 'gallery.js'), 'text/javascript'));
  router.get('/gallery/gallery.css', send(path.join(GALLERY_DIR, 'gallery.css'), 'css'));
  router.get('/gallery/thumbhash.js', send(THUMBHASH_JS, 'text/javascript'));
  // pages without an icon of their own (the API reference) ask for this one
  router.get('/favicon.ico', (_req, res) => {
    res.type('image/svg+xml').setHeader('Cache-Control', 'public, max-age=86400');
    res.send(FAVICON);
  });
  router.get('/gallery/config.json', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    // keys from API_KEYS or made at run time: either way the page asks for one; the topic's limit
    // in characters (code points): a textarea's maxlength counts UTF-16 units, half as many emoji
    res.json({ keyRequired: ctx.config.apiKeys.length > 0 || (await ctx.apiKeyStore.required()), maxTopicLength: MAX_TOPIC_LENGTH });
  });
  return router;
}
