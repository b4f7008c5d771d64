import helmet from 'helmet';
import type { RequestHandler } from 'express';

/**
 * Security headers on every response. The CSP allows only this origin's own scripts: the
 * gallery, the API reference and Bull Board all load theirs from here. Styles may be inline
 * (Bull Board sets style attributes); images may be data:/blob: (placeholders). Files are
 * served with nosniff too, and may be embedded by other sites (their URLs are handed out).
 */
const directives = (extra: { img?: string[] } = {}) => ({
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:', 'blob:', ...(extra.img ?? [])],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'worker-src': ["'self'", 'blob:'],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
});

/**
 * `filesBaseUrl`: where handed-out file URLs start (a bucket or CDN with S3_PUBLIC_BASE_URL, or
 * PUBLIC_BASE_URL): the gallery shows thumbnails from there, so images may come from its origin.
 */
export function securityHeaders(filesBaseUrl: string): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: directives({ img: [new URL(filesBaseUrl).origin] }),
    },
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // as frame-ancestors 'none' says, for browsers that know only this header
    frameguard: { action: 'deny' },
    // plain http is fine behind a TLS-terminating proxy; the proxy decides on HSTS
    strictTransportSecurity: false,
  });
}
