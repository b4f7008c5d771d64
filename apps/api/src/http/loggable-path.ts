/**
 * A request's path as it may be logged: no query string, and nothing after `/files/`, whose
 * segments are capabilities (unguessable file URLs). Routing ignores case, so this does too.
 */
export function loggablePath(url: string): string {
  const path = url.split('?')[0] ?? '';
  return /^\/files\//i.test(path) ? '/files/[redacted]' : path;
}
