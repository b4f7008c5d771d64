import helmet from 'helmet';
import type { RequestHandler } from 'express';

/**
 * Security headers on every response. The CSP allows only this origin's own scripts: the
 * gallery, the API reference and Bull Board all load theirs from here. Styles may be inline
 * (Bull Board sets style attributes); images may be data:/blob: (placeholders). Files are
 * served with nosniff too, and may be embedded by other sites (their URLs are handed out).
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'", "'unsafe-inline'"],
        'img-src': ["'self'", 'data:', 'blob:'],
        'font-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'worker-src': ["'self'", 'blob:'],
        'object-src': ["'none'"],
        'base-uri': ["'self'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
      },
    },
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // plain http is fine behind a TLS-terminating proxy; the proxy decides on HSTS
    strictTransportSecurity: false,
  });
}
