/**
 * The methods each documented path answers, read off the OpenAPI document's paths (so the two
 * cannot disagree): a known path asked with another method is a 405 with `Allow`, not a 404, and
 * OPTIONS on it says the same in a 204.
 * Returns null for a path the document does not name.
 */
export function allowedMethods(paths: Record<string, object>): (path: string) => string[] | null {
  const routes = Object.entries(paths).map(([template, operations]) => {
    const pattern = template
      .split(/\{[^}]+\}/)
      .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
      .join('[^/]+');
    const methods = Object.keys(operations).map((m) => m.toUpperCase());
    // Express answers HEAD wherever it answers GET; OPTIONS is answered for every documented path (optionsAnswer)
    if (methods.includes('GET')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
    methods.push('OPTIONS');
    // Express matches paths regardless of case
    return { re: new RegExp(`^${pattern}/?$`, 'i'), methods };
  });
  return (path) => routes.find((r) => r.re.test(path))?.methods ?? null;
}
