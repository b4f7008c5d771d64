import { hex, hsl, mix, shift, type Hsl } from '../color';
import { ridgeY } from '../layout';
import type { Rng } from '../prng';
import { flock } from '../shapes';
import { el, fmt, points, type Point } from '../svg';
import type { Rendered, SceneContext } from '../types';

// Flat design: every fill is one of these solid tones, no gradients, no filters,
// no opacity. That is exactly what makes the style recognisable (and cheap).
interface Tones {
  sky: string;
  skyBands: [string, string];
  halo: [string, string, string];
  sun: string;
  cloud: string;
  far: string;
  farShade: string;
  near: string;
  nearShade: string;
  snow: string;
  ground: string;
  groundAlt: string;
  path: string;
  dash: string;
  leaf: string;
  leafShade: string;
  accent: string;
  dark: string;
}

function makeTones({ sky, horizon, sun, land, accent, shade }: SceneContext['palette']): Tones {
  const white = hsl(0, 0, 1);
  const ground: Hsl = shift(land, { l: 0.1, s: 0.05 });
  return {
    sky: hex(sky),
    skyBands: [hex(mix(sky, horizon, 0.3)), hex(mix(sky, horizon, 0.6))],
    halo: [hex(mix(sky, sun, 0.22)), hex(mix(sky, sun, 0.42)), hex(mix(sky, sun, 0.62))],
    sun: hex(sun),
    cloud: hex(mix(horizon, white, 0.75)),
    far: hex(mix(land, sky, 0.6)),
    farShade: hex(mix(mix(land, sky, 0.6), shade, 0.18)),
    near: hex(mix(land, sky, 0.25)),
    nearShade: hex(mix(mix(land, sky, 0.25), shade, 0.25)),
    snow: hex(mix(white, sky, 0.12)),
    ground: hex(ground),
    groundAlt: hex(shift(ground, { l: -0.06, h: 8 })),
    path: hex(mix(horizon, ground, 0.35)),
    dash: hex(mix(horizon, white, 0.6)),
    leaf: hex(shift(land, { l: 0.02, s: 0.1 })),
    leafShade: hex(mix(land, shade, 0.45)),
    accent: hex(accent),
    dark: hex(mix(shade, land, 0.2)),
  };
}

const poly = (pts: readonly Point[], fill: string): string => el('polygon', { points: points(pts), fill });

function mountain(rng: Rng, peak: Point, baseY: number, halfWidth: number, fill: string, shadeFill: string, snow: string | null, lightFromLeft: boolean): string {
  const left = { x: peak.x - halfWidth * rng.range(0.85, 1.15), y: baseY };
  const right = { x: peak.x + halfWidth * rng.range(0.85, 1.15), y: baseY };
  const side = lightFromLeft ? right : left;
  const split = { x: peak.x + (side.x - peak.x) * rng.range(0.05, 0.3), y: baseY };
  let out = poly([left, peak, right], fill) + poly([peak, side, split], shadeFill);
  if (snow) {
    const f = rng.range(0.22, 0.32);
    const along = (p: Point): Point => ({ x: peak.x + (p.x - peak.x) * f, y: peak.y + (p.y - peak.y) * f });
    const a = along(left);
    const b = along(right);
    const teeth = 3;
    const cap: Point[] = [peak, b];
    for (let i = teeth - 1; i > 0; i--) {
      const t = i / teeth;
      cap.push({ x: a.x + (b.x - a.x) * (t + 0.5 / teeth), y: a.y + (peak.y - a.y) * -0.35 });
      cap.push({ x: a.x + (b.x - a.x) * t, y: a.y });
    }
    cap.push({ x: a.x + (b.x - a.x) * (0.5 / teeth), y: a.y + (peak.y - a.y) * -0.35 }, a);
    out += poly(cap, snow);
  }
  return out;
}

function cloud(rng: Rng, x: number, y: number, size: number, fill: string): string {
  const w = size * rng.range(2.2, 3.2);
  const h = size * 0.55;
  return (
    el('rect', { x: x - w / 2, y: y - h / 2, width: w, height: h, rx: h / 2, fill }) +
    el('circle', { cx: x - w * 0.12, cy: y - h * 0.45, r: size * 0.45, fill }) +
    el('circle', { cx: x + w * 0.15, cy: y - h * 0.35, r: size * 0.33, fill })
  );
}

export function renderVector({ rng, palette, layout }: SceneContext): Rendered {
  const { width: w, height: h, horizon, sun, unit, lightFromLeft } = layout;
  const t = makeTones(palette);
  const body: string[] = [];

  body.push(el('rect', { width: w, height: h, fill: t.sky }));
  if (rng.chance(0.6)) {
    // Banded sky: the flat-design stand-in for a gradient.
    const first = horizon * rng.range(0.3, 0.45);
    const second = first + (horizon - first) * rng.range(0.4, 0.6);
    body.push(el('rect', { x: 0, y: first, width: w, height: horizon - first, fill: t.skyBands[0] }));
    body.push(el('rect', { x: 0, y: second, width: w, height: horizon - second, fill: t.skyBands[1] }));
  }
  t.halo.forEach((fill, i) => body.push(el('circle', { cx: sun.x, cy: sun.y, r: sun.r * (3.4 - i * 0.8), fill })));
  body.push(el('circle', { cx: sun.x, cy: sun.y, r: sun.r * 1.1, fill: t.sun }));

  for (let i = rng.int(2, 3); i > 0; i--) {
    body.push(cloud(rng, rng.range(0.1, 0.9) * w, rng.range(0.12, 0.45) * horizon, unit * rng.range(0.05, 0.085), t.cloud));
  }
  const birds = flock(rng, w, horizon, unit).map(({ x, y, s }) => `M${fmt(x - s)} ${fmt(y - s * 0.5)}L${fmt(x)} ${fmt(y)}L${fmt(x + s)} ${fmt(y - s * 0.5)}`);
  body.push(el('path', { d: birds.join(''), fill: 'none', stroke: t.dark, 'stroke-width': unit * 0.004, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));

  // Mountain ranges: far (pale, snow-capped) then near, peaks taken from the layout ridges.
  const ranges = [
    { ridge: layout.ridges[0], fill: t.far, shade: t.farShade, snowy: true, base: horizon },
    { ridge: layout.ridges[1], fill: t.near, shade: t.nearShade, snowy: false, base: horizon + 1 },
  ];
  ranges.forEach(({ ridge, fill, shade, snowy, base }, r) => {
    if (!ridge) return;
    const peaks = rng.int(3, 5) + r;
    for (let i = 0; i < peaks; i++) {
      const x = ((i + 0.5 + rng.jitter(0.3)) / peaks) * w;
      const height = (base - ridgeY(ridge, x, w)) * (r === 0 ? 1.25 : 0.8) + unit * 0.04;
      const peak = { x, y: base - height };
      const tall = height > unit * 0.16;
      body.push(mountain(rng, peak, base, height * rng.range(0.9, 1.4), fill, shade, snowy && tall ? t.snow : null, lightFromLeft));
    }
  });

  // Rolling hills are circles sunk below the horizon.
  for (let i = rng.int(1, 3); i > 0; i--) {
    const r = w * rng.range(0.25, 0.45);
    const rise = unit * rng.range(0.04, 0.1);
    body.push(el('circle', { cx: rng.range(0, w), cy: horizon + r - rise, r, fill: i % 2 ? t.leaf : t.groundAlt }));
  }
  body.push(el('rect', { x: 0, y: horizon, width: w, height: h - horizon, fill: t.ground }));

  // Field stripes for depth, spaced by perspective.
  for (let k = 1; k <= 4; k += 2) {
    const y0 = horizon + (h - horizon) * (k / 6) ** 1.6;
    const y1 = horizon + (h - horizon) * ((k + 1) / 6) ** 1.6;
    body.push(el('rect', { x: 0, y: y0, width: w, height: y1 - y0, fill: t.groundAlt }));
  }

  // A road or river running to a vanishing point on the horizon.
  const vanishX = w * rng.range(0.3, 0.7);
  const footX = w * rng.range(0.3, 0.7);
  const footHalf = w * rng.range(0.12, 0.2);
  const hasPath = rng.chance(0.65);
  const river = rng.chance(0.5);
  const pathHalfAt = (y: number): number => footHalf * ((y - horizon) / (h - horizon)) + 2;
  const pathXAt = (y: number): number => vanishX + (footX - vanishX) * ((y - horizon) / (h - horizon));
  if (hasPath) {
    body.push(poly([{ x: vanishX - 2, y: horizon }, { x: vanishX + 2, y: horizon }, { x: footX + footHalf, y: h }, { x: footX - footHalf, y: h }], river ? t.sky : t.path));
    for (let k = 1; k <= 6; k++) {
      const a = horizon + (h - horizon) * ((k - 0.35) / 6.5) ** 1.7;
      const b = horizon + (h - horizon) * (k / 6.5) ** 1.7;
      const wa = pathHalfAt(a) * 0.06;
      const wb = pathHalfAt(b) * 0.06;
      const dx = river ? pathHalfAt(a) * 0.4 * (k % 2 ? 1 : -1) : 0;
      body.push(poly([{ x: pathXAt(a) - wa + dx, y: a }, { x: pathXAt(a) + wa + dx, y: a }, { x: pathXAt(b) + wb + dx, y: b }, { x: pathXAt(b) - wb + dx, y: b }], river ? t.cloud : t.dash));
    }
  }

  const placed: Array<{ x: number; y: number; size: number }> = [];
  for (const prop of layout.props) {
    const nearness = (prop.ground - horizon) / (h - horizon);
    const size = unit * (0.05 + 0.2 * nearness);
    let x = prop.x;
    const y = prop.ground;
    // Keep props off the road: step aside to whichever verge is closer.
    if (hasPath && Math.abs(x - pathXAt(y)) < pathHalfAt(y) + size * 0.6) {
      const dir = x < pathXAt(y) ? -1 : 1;
      x = pathXAt(y) + dir * (pathHalfAt(y) + size * 0.7);
    }
    // Flat shapes merge into one blob when they overlap, so crowded props are dropped.
    if (placed.some((p) => Math.abs(p.x - x) < (p.size + size) * 0.45 && Math.abs(p.y - y) < (p.size + size) * 0.5)) continue;
    placed.push({ x, y, size });
    const shadeDir = lightFromLeft ? 1 : -1;
    if (prop.variant < 0.4) {
      // Conifer: stacked triangles split into a lit and a shaded half.
      const trunkW = size * 0.12;
      body.push(el('rect', { x: x - trunkW / 2, y: y - size * 0.25, width: trunkW, height: size * 0.25, fill: t.dark }));
      const tiers = 3;
      for (let i = 0; i < tiers; i++) {
        const base = y - size * 0.2 - i * size * 0.32;
        const half = size * (0.42 - i * 0.09);
        const apex = { x, y: base - size * 0.55 };
        body.push(poly([{ x: x - half, y: base }, apex, { x: x + half, y: base }], t.leaf));
        body.push(poly([apex, { x: x + shadeDir * half, y: base }, { x, y: base }], t.leafShade));
      }
    } else if (prop.variant < 0.75) {
      // Round tree with a half-disc shadow.
      const r = size * 0.42;
      const cy = y - size * 0.3 - r;
      const trunkW = size * 0.12;
      body.push(el('rect', { x: x - trunkW / 2, y: cy, width: trunkW, height: y - cy, fill: t.dark }));
      body.push(el('circle', { cx: x, cy, r, fill: prop.tone < 0.5 ? t.leaf : t.accent }));
      body.push(el('path', { d: `M${fmt(x)} ${fmt(cy - r)}A${fmt(r)} ${fmt(r)} 0 0 ${lightFromLeft ? 1 : 0} ${fmt(x)} ${fmt(cy + r)}Z`, fill: t.leafShade }));
    } else {
      // Little house: walls, roof, door, lit windows.
      const bw = size * 0.8;
      const bh = size * 0.55;
      const left = x - bw / 2;
      body.push(el('rect', { x: left, y: y - bh, width: bw, height: bh, fill: t.cloud }));
      body.push(el('rect', { x: lightFromLeft ? x : left, y: y - bh, width: bw / 2, height: bh, fill: t.dash }));
      body.push(poly([{ x: left - bw * 0.1, y: y - bh }, { x, y: y - bh - size * 0.4 }, { x: left + bw * 1.1, y: y - bh }], t.accent));
      body.push(el('rect', { x: x - bw * 0.1, y: y - bh * 0.55, width: bw * 0.2, height: bh * 0.55, rx: bw * 0.04, fill: t.dark }));
      body.push(el('rect', { x: left + bw * 0.12, y: y - bh * 0.75, width: bw * 0.18, height: bw * 0.18, rx: bw * 0.03, fill: t.sun }));
      body.push(el('rect', { x: left + bw * 0.7, y: y - bh * 0.75, width: bw * 0.18, height: bw * 0.18, rx: bw * 0.03, fill: t.sun }));
    }
  }

  return { defs: '', body: body.join('') };
}
