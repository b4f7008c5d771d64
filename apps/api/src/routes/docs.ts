import { Router } from 'express';
import type { ApiContext } from '../context';
import { buildOpenApi } from '../openapi';

/** The API reference: the OpenAPI 3.1 document and a page that renders it without any CDN. */
export function docsRouter(ctx: ApiContext): Router {
  const router = Router();
  const doc = buildOpenApi(ctx.config.PUBLIC_BASE_URL);
  router.get('/openapi.json', (_req, res) => {
    res.json(doc);
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(renderDocsPage(doc));
  });
  return router;
}

type Doc = ReturnType<typeof buildOpenApi>;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderDocsPage(doc: Doc): string {
  const openApiUrl = `${doc.servers[0]!.url}/openapi.json`;
  const rows = Object.entries(doc.paths)
    .flatMap(([path, ops]) =>
      Object.entries(ops as Record<string, { summary?: string; description?: string }>).map(
        ([method, op]) =>
          `<section><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h3><p><b>${escapeHtml(op.summary ?? '')}</b></p><p>${escapeHtml(op.description ?? '')}</p></section>`,
      ),
    )
    .join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(doc.info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:920px;margin:2rem auto;padding:0 1rem;color:#1b1f24}code{background:#f2f4f7;padding:.1rem .3rem;border-radius:4px}
.m{display:inline-block;min-width:4.5rem;text-align:center;border-radius:4px;color:#fff;font-size:.8rem;padding:.15rem .4rem}.get{background:#2f7d32}.post{background:#1565c0}.delete{background:#c62828}
section{border-bottom:1px solid #e3e6ea;padding:.4rem 0}</style></head><body>
<h1>${escapeHtml(doc.info.title)} <small>${escapeHtml(doc.info.version)}</small></h1><p>${escapeHtml(doc.info.description)}</p>
<p>Machine-readable: <a href="${escapeHtml(openApiUrl)}">${escapeHtml(openApiUrl)}</a> (OpenAPI ${doc.openapi}).</p>${rows}</body></html>`;
}
