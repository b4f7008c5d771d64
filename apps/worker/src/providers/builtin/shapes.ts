import type { Rng } from './prng';
import type { Point } from './svg';

/**
 * Conifer outline: tiers of branch tips that stick out and tuck back in, which
 * reads as a fir tree even as a flat silhouette.
 */
export function coniferOutline(rng: Rng, x: number, ground: number, height: number, width: number): Point[] {
  const tiers = Math.max(5, Math.min(14, Math.round(height / 14)));
  const trunk = height * 0.07;
  const crown = height - trunk;
  const lean = rng.jitter(width * 0.06);
  const left: Point[] = [];
  const right: Point[] = [];
  for (let i = 0; i < tiers; i++) {
    const t = (i + rng.jitter(0.2)) / tiers;
    const y = ground - trunk - crown * t;
    // Slightly convex taper, and each side's branch has its own reach and droop.
    const half = (width / 2) * (1 - t) ** 0.85;
    const step = crown / tiers;
    const axis = x + lean * t;
    left.push({ x: axis - half * rng.range(0.75, 1.15), y: y + step * rng.range(0, 0.3) });
    left.push({ x: axis - half * rng.range(0.3, 0.55), y: y - step * rng.range(0.5, 0.9) });
    right.push({ x: axis + half * rng.range(0.75, 1.15), y: y + step * rng.range(0, 0.3) });
    right.push({ x: axis + half * rng.range(0.3, 0.55), y: y - step * rng.range(0.5, 0.9) });
  }
  const trunkHalf = width * 0.05;
  return [
    { x: x - trunkHalf, y: ground },
    { x: x - trunkHalf, y: ground - trunk },
    ...left,
    { x: x + lean, y: ground - height },
    ...right.reverse(),
    { x: x + trunkHalf, y: ground - trunk },
    { x: x + trunkHalf, y: ground },
  ];
}

/** Lumpy closed ring of points for canopies, clouds and bushes. */
export function blobOutline(rng: Rng, cx: number, cy: number, rx: number, ry: number, lumps = 9, roughness = 0.18): Point[] {
  const phase = rng.range(0, Math.PI * 2);
  return Array.from({ length: lumps }, (_, i) => {
    const a = phase + (i / lumps) * Math.PI * 2;
    const k = 1 + rng.jitter(roughness);
    return { x: cx + Math.cos(a) * rx * k, y: cy + Math.sin(a) * ry * k };
  });
}

/** Hand-drawn wobble: resample a polyline and push points off-line by a little noise. */
export function wobble(rng: Rng, pts: readonly Point[], amount: number, step: number, closed = false): Point[] {
  const out: Point[] = [];
  const count = closed ? pts.length : pts.length - 1;
  for (let i = 0; i < count; i++) {
    const a = pts[i] as Point;
    const b = pts[(i + 1) % pts.length] as Point;
    const len = Math.hypot(b.x - a.x, b.y - a.y);
    const n = Math.max(1, Math.round(len / step));
    for (let k = 0; k < n; k++) {
      const t = k / n;
      out.push({ x: a.x + (b.x - a.x) * t + rng.jitter(amount), y: a.y + (b.y - a.y) * t + rng.jitter(amount) });
    }
  }
  if (!closed) {
    const last = pts[pts.length - 1];
    if (last) out.push({ x: last.x + rng.jitter(amount), y: last.y + rng.jitter(amount) });
  }
  return out;
}

/** A small flock above the horizon: a centre, then a few birds of size `s` scattered around it. */
export function flock(rng: Rng, width: number, horizon: number, unit: number): Array<{ x: number; y: number; s: number }> {
  const cx = rng.range(0.15, 0.85) * width;
  const cy = rng.range(0.15, 0.4) * horizon;
  const birds: Array<{ x: number; y: number; s: number }> = [];
  for (let i = rng.int(2, 4); i > 0; i--) {
    const s = unit * rng.range(0.012, 0.02);
    birds.push({ s, x: cx + rng.jitter(unit * 0.1), y: cy + rng.jitter(unit * 0.05) });
  }
  return birds;
}
