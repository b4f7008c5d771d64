export type Attrs = Readonly<Record<string, string | number | undefined>>;
export interface Point {
  readonly x: number;
  readonly y: number;
}

/**
 * One decimal is finer than a device pixel at our sizes and keeps the markup
 * small; rounding also hides last-ulp differences in Math.sin between builds.
 */
export function fmt(n: number): string {
  const r = Math.round(n * 10) / 10;
  return Object.is(r, -0) ? '0' : String(r);
}

/** Every value here is produced by this module (numbers, colours, ids), never by the caller. */
export function el(tag: string, attrs: Attrs, children?: string): string {
  let out = '<' + tag;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    out += ` ${key}="${typeof value === 'number' ? fmt(value) : value}"`;
  }
  return children === undefined ? out + '/>' : `${out}>${children}</${tag}>`;
}

export function points(pts: readonly Point[]): string {
  return pts.map((p) => `${fmt(p.x)},${fmt(p.y)}`).join(' ');
}

export function polyPath(pts: readonly Point[], closed = true): string {
  return pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(p.x)} ${fmt(p.y)}`).join('') + (closed ? 'Z' : '');
}

/** Catmull-Rom through the points, emitted as cubic Béziers so librsvg draws it natively. */
export function smoothPath(pts: readonly Point[], closed = false, tension = 1): string {
  const first = pts[0];
  if (!first || pts.length < 2) return '';
  return `M${fmt(first.x)} ${fmt(first.y)}` + smoothSegments(pts, closed, tension) + (closed ? 'Z' : '');
}

/** The curve commands only, for splicing several curves into one outline. */
export function smoothSegments(pts: readonly Point[], closed = false, tension = 1): string {
  const n = pts.length;
  const at = (i: number): Point => {
    const idx = closed ? ((i % n) + n) % n : Math.min(n - 1, Math.max(0, i));
    return pts[idx] as Point;
  };
  let d = '';
  const segments = closed ? n : n - 1;
  const k = tension / 6;
  for (let i = 0; i < segments; i++) {
    const p0 = at(i - 1);
    const p1 = at(i);
    const p2 = at(i + 1);
    const p3 = at(i + 2);
    d +=
      `C${fmt(p1.x + (p2.x - p0.x) * k)} ${fmt(p1.y + (p2.y - p0.y) * k)} ` +
      `${fmt(p2.x - (p3.x - p1.x) * k)} ${fmt(p2.y - (p3.y - p1.y) * k)} ${fmt(p2.x)} ${fmt(p2.y)}`;
  }
  return d;
}

export function document(width: number, height: number, defs: string, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    (defs ? `<defs>${defs}</defs>` : '') +
    body +
    '</svg>'
  );
}
