import type { Rng } from '../prng';
import { fmt, smoothSegments, type Point } from '../svg';

/**
 * A brush stroke as a filled outline: width swells and thins along the line and
 * tapers at both ends, which a plain SVG stroke (constant width) cannot do.
 */
export function brushStroke(rng: Rng, pts: readonly Point[], width: number): string {
  const n = pts.length;
  if (n < 2) return '';
  const phase = rng.range(0, Math.PI * 2);
  const waves = rng.range(1, 3);
  const left: Point[] = [];
  const right: Point[] = [];
  for (let i = 0; i < n; i++) {
    const p = pts[i] as Point;
    const prev = pts[Math.max(0, i - 1)] as Point;
    const next = pts[Math.min(n - 1, i + 1)] as Point;
    const tx = next.x - prev.x;
    const ty = next.y - prev.y;
    const len = Math.hypot(tx, ty) || 1;
    const t = i / (n - 1);
    const taper = Math.max(0.12, Math.sin(Math.PI * t)) ** 0.5;
    const pressure = 0.55 + 0.45 * Math.sin(phase + t * waves * Math.PI * 2);
    const half = (width * taper * pressure) / 2;
    left.push({ x: p.x - (ty / len) * half, y: p.y + (tx / len) * half });
    right.push({ x: p.x + (ty / len) * half, y: p.y - (tx / len) * half });
  }
  right.reverse();
  const l0 = left[0] as Point;
  const r0 = right[0] as Point;
  return `M${fmt(l0.x)} ${fmt(l0.y)}${smoothSegments(left)}L${fmt(r0.x)} ${fmt(r0.y)}${smoothSegments(right)}Z`;
}

/** Points on a loosely drawn circle that overshoots its start, like a quick pen loop. */
export function looseCircle(rng: Rng, cx: number, cy: number, r: number, turns = 1.12): Point[] {
  const start = rng.range(0, Math.PI * 2);
  const steps = Math.max(10, Math.round(16 * turns));
  const drift = rng.range(0.04, 0.1);
  return Array.from({ length: steps + 1 }, (_, i) => {
    const a = start + (i / steps) * Math.PI * 2 * turns;
    const rr = r * (1 + drift * (i / steps) + rng.jitter(0.025));
    return { x: cx + Math.cos(a) * rr, y: cy + Math.sin(a) * rr };
  });
}

/**
 * Parallel hatch lines across a box at the given angle; each line starts and
 * ends a little randomly, as a hand would. Clip the result to the shape.
 */
export function hatch(rng: Rng, box: { x: number; y: number; w: number; h: number }, spacing: number, angle: number): string {
  const dx = Math.cos(angle);
  const dy = Math.sin(angle);
  // Lines are laid out along the normal, long enough to cross the whole box.
  const reach = Math.hypot(box.w, box.h);
  const cx = box.x + box.w / 2;
  const cy = box.y + box.h / 2;
  let d = '';
  for (let s = -reach / 2; s <= reach / 2; s += spacing * rng.range(0.8, 1.2)) {
    const ox = cx - dy * s;
    const oy = cy + dx * s;
    const a = -reach / 2 + rng.range(0, reach * 0.1);
    const b = reach / 2 - rng.range(0, reach * 0.1);
    d += `M${fmt(ox + dx * a)} ${fmt(oy + dy * a)}L${fmt(ox + dx * b + rng.jitter(1.5))} ${fmt(oy + dy * b + rng.jitter(1.5))}`;
  }
  return d;
}
