/** Hue in degrees, saturation and lightness in [0, 1]. */
export interface Hsl {
  readonly h: number;
  readonly s: number;
  readonly l: number;
}

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));
const wrapHue = (h: number): number => ((h % 360) + 360) % 360;

export function hsl(h: number, s: number, l: number): Hsl {
  return { h: wrapHue(h), s: clamp01(s), l: clamp01(l) };
}

/** Relative tweak; lightness/saturation deltas are absolute amounts. */
export function shift(c: Hsl, delta: { h?: number; s?: number; l?: number }): Hsl {
  return hsl(c.h + (delta.h ?? 0), c.s + (delta.s ?? 0), c.l + (delta.l ?? 0));
}

/** Interpolates hue along the shorter arc so red→magenta doesn't pass through green. */
export function lerpHue(from: number, to: number, t: number): number {
  const diff = ((to - from + 540) % 360) - 180;
  return wrapHue(from + diff * t);
}

function toRgb(c: Hsl): [number, number, number] {
  const k = (n: number): number => (n + c.h / 30) % 12;
  const a = c.s * Math.min(c.l, 1 - c.l);
  const f = (n: number): number => c.l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [f(0), f(8), f(4)];
}

function fromRgb(r: number, g: number, b: number): Hsl {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const l = (max + min) / 2;
  const d = max - min;
  if (d === 0) return hsl(0, 0, l);
  const s = d / (1 - Math.abs(2 * l - 1));
  let h: number;
  if (max === r) h = ((g - b) / d) % 6;
  else if (max === g) h = (b - r) / d + 2;
  else h = (r - g) / d + 4;
  return hsl(h * 60, s, l);
}

/** Mixing happens in RGB: HSL mixing of distant hues produces muddy rainbow detours. */
export function mix(a: Hsl, b: Hsl, t: number): Hsl {
  const [r1, g1, b1] = toRgb(a);
  const [r2, g2, b2] = toRgb(b);
  return fromRgb(r1 + (r2 - r1) * t, g1 + (g2 - g1) * t, b1 + (b2 - b1) * t);
}

export function hex(c: Hsl): string {
  return (
    '#' +
    toRgb(c)
      .map((v) => Math.round(clamp01(v) * 255).toString(16).padStart(2, '0'))
      .join('')
  );
}
