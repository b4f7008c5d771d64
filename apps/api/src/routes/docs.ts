import { Router } from 'express';
import type { buildOpenApi } from '../openapi';

/** Scalar's self-contained bundle, served from its npm package: the reference works offline, no CDN. */
const SCALAR_JS = require.resolve('@scalar/api-reference/browser/standalone.js');

/** Request samples offered beside each operation. */
const SCALAR_CONFIG = {
  withDefaultFonts: false,
  // the AI agent calls Scalar's servers: off, the reference stays offline
  agent: { disabled: true },
  showDeveloperTools: 'never',
  hideClientButton: false,
  defaultHttpClient: { targetKey: 'shell', clientKey: 'curl' },
  hiddenClients: { c: true, clojure: true, csharp: true, dart: true, fsharp: true, go: true, http: true, java: true, kotlin: true, objc: true, ocaml: true, php: true, powershell: true, r: true, ruby: true, rust: true, swift: true },
};

/** The API reference: the OpenAPI 3.1 document and Scalar's reference page rendering it. */
export function docsRouter(doc: ReturnType<typeof buildOpenApi>): Router {
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.json(doc);
  });
  router.get('/docs/scalar.js', (_req, res) => {
    res.type('text/javascript').setHeader('Cache-Control', 'public, max-age=3600');
    res.sendFile(SCALAR_JS);
  });
  const page = renderPage(doc);
  router.get('/docs', (req, res) => {
    // the page's URLs are relative to /docs: at /docs/ they would name /docs/docs/scalar.js
    if (req.path.endsWith('/')) return res.redirect(301, '../docs');
    res.type('html').send(page);
  });
  return router;
}

const escapeAttr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const escapeHtml = escapeAttr;

/** Scalar renders the document; without JavaScript the page still lists every endpoint. */
function renderPage(doc: ReturnType<typeof buildOpenApi>): string {
  const base = doc.servers[0]!.url;
  const rows = Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.entries(ops as Record<string, { summary?: string }>).map(([method, op]) => `<li><code>${method.toUpperCase()} ${escapeHtml(path)}</code> ${escapeHtml(op.summary ?? '')}</li>`))
    .join('\n');
  // relative script URLs: the page works under any path prefix the API is served at
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>imagegen API reference</title>
</head>
<body>
  <noscript>
    <h1>imagegen API</h1>
    <p>The machine-readable reference: <a href="${escapeAttr(`${base}/openapi.json`)}">${escapeHtml(`${base}/openapi.json`)}</a> (OpenAPI ${doc.openapi}).</p>
    <ul>
${rows}
    </ul>
  </noscript>
  <script id="api-reference" data-url="openapi.json" data-configuration="${escapeAttr(JSON.stringify(SCALAR_CONFIG))}"></script>
  <script src="docs/scalar.js"></script>
</body>
</html>
`;
}
