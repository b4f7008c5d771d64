import { hex, hsl, mix, shift, type Hsl } from '../color';
import { ridgeY } from '../layout';
import type { Rng } from '../prng';
import { blobOutline, flock, wobble } from '../shapes';
import { el, fmt, smoothPath, type Point } from '../svg';
import type { Rendered, SceneContext } from '../types';
import { brushStroke, hatch, looseCircle } from './ink';

const TILE = 256;

/** Watercolour wash: translucent fill plus a darker rim where pigment pools at the edge. */
function wash(d: string, color: Hsl, opacity: number): string {
  return el('path', {
    d,
    fill: hex(color),
    'fill-opacity': opacity,
    stroke: hex(shift(color, { l: -0.12 })),
    'stroke-opacity': opacity * 0.45,
    'stroke-width': 1.6,
    'stroke-linejoin': 'round',
  });
}

function wobblyRect(rng: Rng, x: number, y: number, w: number, h: number, amount: number): string {
  const corners: Point[] = [
    { x, y },
    { x: x + w, y },
    { x: x + w, y: y + h },
    { x, y: y + h },
  ];
  return smoothPath(wobble(rng, corners, amount, Math.max(w, h) / 12, true), true, 0.6);
}

export function renderIllustration({ rng, palette, layout }: SceneContext): Rendered {
  const { width: w, height: h, horizon, sun, unit, lightFromLeft } = layout;
  const defs: string[] = [];
  const body: string[] = [];
  const paper = mix(hsl(40, 0.45, 0.92), palette.horizon, 0.12);
  const ink = mix(palette.shade, hsl(225, 0.35, 0.12), 0.5);
  const inkHex = hex(ink);
  // Watercolour pigments are lighter and a touch greyer than the raw palette.
  const pigment = (c: Hsl, amount = 0.25): Hsl => mix(shift(c, { s: -0.08 }), paper, amount);
  const margin = unit * 0.035;

  body.push(el('rect', { width: w, height: h, fill: hex(paper) }));

  // The painting stops short of the paper edge with a ragged border.
  defs.push(el('clipPath', { id: 'sheet' }, el('path', { d: wobblyRect(rng, margin, margin, w - margin * 2, h - margin * 2, unit * 0.006) })));
  const painting: string[] = [];

  // Graded sky: a pale base wash, a deeper wash at the top, a warm band near the horizon.
  painting.push(wash(wobblyRect(rng, 0, 0, w, horizon + unit * 0.02, unit * 0.01), pigment(palette.sky, 0.45), 0.75));
  painting.push(wash(wobblyRect(rng, -10, -10, w + 20, horizon * rng.range(0.3, 0.45), unit * 0.02), pigment(palette.sky, 0.1), 0.3));
  painting.push(wash(wobblyRect(rng, -10, horizon * 0.7, w + 20, horizon * 0.32, unit * 0.015), pigment(palette.horizon, 0.1), 0.35));

  painting.push(wash(smoothPath(looseCircle(rng, sun.x + 3, sun.y + 2, sun.r * 1.05, 1), true), pigment(palette.sun, 0), 0.9));
  painting.push(el('path', { d: brushStroke(rng, looseCircle(rng, sun.x, sun.y, sun.r), unit * 0.006), fill: inkHex }));
  const rays: string[] = [];
  const rayCount = rng.int(9, 14);
  for (let i = 0; i < rayCount; i++) {
    const a = (i / rayCount) * Math.PI * 2 + rng.jitter(0.12);
    const r0 = sun.r * rng.range(1.3, 1.45);
    const r1 = r0 + sun.r * rng.range(0.35, 0.7);
    rays.push(`M${fmt(sun.x + Math.cos(a) * r0)} ${fmt(sun.y + Math.sin(a) * r0)}L${fmt(sun.x + Math.cos(a) * r1)} ${fmt(sun.y + Math.sin(a) * r1)}`);
  }
  painting.push(el('path', { d: rays.join(''), stroke: inkHex, 'stroke-width': unit * 0.0035, 'stroke-linecap': 'round', fill: 'none' }));

  // Clouds: paper-coloured wash "lifts" the sky; the scalloped top is inked, the flat base is not.
  for (let i = rng.int(1, 3); i > 0; i--) {
    const cx = rng.range(0.1, 0.9) * w;
    const cy = rng.range(0.12, 0.45) * horizon;
    const size = unit * rng.range(0.05, 0.08);
    const bumps = rng.int(3, 5);
    const left = cx - size * bumps * 0.8;
    let x = left;
    let top = '';
    for (let k = 0; k < bumps; k++) {
      const r = size * (k === 0 || k === bumps - 1 ? rng.range(0.6, 0.8) : rng.range(0.85, 1.2));
      top += `A${fmt(r)} ${fmt(r * 0.9)} 0 0 1 ${fmt(x + r * 1.6)} ${fmt(cy + rng.jitter(size * 0.1))}`;
      x += r * 1.6;
    }
    const start = `M${fmt(left)} ${fmt(cy)}`;
    painting.push(wash(`${start}${top}Q${fmt((left + x) / 2)} ${fmt(cy + size * 0.5)} ${fmt(left)} ${fmt(cy)}Z`, paper, 0.9));
    painting.push(el('path', { d: start + top, fill: 'none', stroke: inkHex, 'stroke-width': unit * 0.003, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' }));
  }

  // Ridges: wash, inked crest, hatched foot (far ones fainter and finer).
  const ridges = layout.ridges;
  ridges.forEach((ridge, i) => {
    const nearness = (i + 1) / ridges.length;
    const color = pigment(mix(palette.land, palette.sky, 0.5 * (1 - nearness)), 0.3 - 0.2 * nearness);
    const crest: Point[] = [];
    for (let k = 0; k <= 24; k++) {
      const x = -20 + ((w + 40) * k) / 24;
      crest.push({ x, y: ridgeY(ridge, x, w) + rng.jitter(unit * 0.004) });
    }
    const shape = smoothPath(crest) + `L${fmt(w + 20)} ${fmt(horizon + 2)}L-20 ${fmt(horizon + 2)}Z`;
    painting.push(wash(shape, color, 0.8));
    defs.push(el('clipPath', { id: `ridge${i}` }, el('path', { d: shape })));
    const footTop = ridge.baseY - ridge.amplitude * 0.45;
    const spacing = unit * (0.009 + 0.004 * (1 - nearness));
    let lines = hatch(rng, { x: 0, y: footTop, w, h: horizon - footTop }, spacing, lightFromLeft ? -Math.PI / 4 : Math.PI / 4 + Math.PI / 2);
    if (i === ridges.length - 1) lines += hatch(rng, { x: lightFromLeft ? w / 2 : 0, y: footTop, w: w / 2, h: horizon - footTop }, spacing * 1.4, lightFromLeft ? Math.PI / 6 : Math.PI - Math.PI / 6);
    painting.push(
      el('path', { d: lines, 'clip-path': `url(#ridge${i})`, fill: 'none', stroke: inkHex, 'stroke-width': 0.8 + nearness * 0.6, 'stroke-opacity': 0.25 + nearness * 0.35, 'stroke-linecap': 'round' }),
    );
    painting.push(el('path', { d: brushStroke(rng, crest, unit * (0.003 + 0.005 * nearness)), fill: inkHex }));
  });

  // Ground wash and a few grass tufts, denser and larger towards the viewer.
  const groundLine: Point[] = Array.from({ length: 13 }, (_, k) => ({ x: -20 + ((w + 40) * k) / 12, y: horizon + rng.jitter(unit * 0.006) }));
  painting.push(wash(smoothPath(groundLine) + `L${fmt(w + 20)} ${fmt(h + 20)}L-20 ${fmt(h + 20)}Z`, pigment(palette.land, 0.2), 0.75));
  // A second, darker glaze over the foreground only, so the ground recedes.
  painting.push(wash(wobblyRect(rng, -10, horizon + (h - horizon) * rng.range(0.5, 0.65), w + 20, h, unit * 0.03), pigment(mix(palette.land, palette.shade, 0.2), 0.1), 0.25));
  painting.push(el('path', { d: brushStroke(rng, groundLine, unit * 0.006), fill: inkHex }));
  const tufts: string[] = [];
  for (let i = rng.int(14, 22); i > 0; i--) {
    const y = horizon + (h - horizon) * rng.range(0.08, 1) ** 0.7;
    const x = rng.range(0, w);
    const s = unit * 0.012 * (0.4 + (y - horizon) / (h - horizon));
    for (let k = -1; k <= 1; k++) tufts.push(`M${fmt(x + k * s * 0.4)} ${fmt(y)}q${fmt(k * s * 0.2)} ${fmt(-s * 0.6)} ${fmt(k * s * 0.7 + rng.jitter(s * 0.2))} ${fmt(-s * rng.range(0.9, 1.4))}`);
  }
  painting.push(el('path', { d: tufts.join(''), fill: 'none', stroke: inkHex, 'stroke-width': unit * 0.0022, 'stroke-linecap': 'round', 'stroke-opacity': 0.8 }));

  layout.props.forEach((prop, index) => {
    const nearness = (prop.ground - horizon) / (h - horizon);
    const size = unit * (0.06 + 0.22 * nearness);
    const { x, ground } = prop;
    const weight = unit * (0.003 + 0.004 * nearness);
    const leaf = pigment(prop.tone < 0.6 ? mix(palette.land, palette.shade, 0.15) : palette.accent, 0.15);
    if (prop.variant < 0.45) {
      // Round tree: loose canopy loop over a wash blob, two-line trunk, hatched shade.
      const r = size * 0.38;
      const cy = ground - size * 0.35 - r;
      const trunk: Point[] = [
        { x: x - r * 0.08, y: ground },
        { x: x - r * 0.05, y: cy + r * 0.5 },
      ];
      const trunk2: Point[] = [
        { x: x + r * 0.1, y: ground },
        { x: x + r * 0.06, y: cy + r * 0.5 },
      ];
      painting.push(el('path', { d: brushStroke(rng, wobble(rng, trunk, 1, size * 0.1), weight * 1.2), fill: inkHex }));
      painting.push(el('path', { d: brushStroke(rng, wobble(rng, trunk2, 1, size * 0.1), weight), fill: inkHex }));
      painting.push(wash(smoothPath(blobOutline(rng, x + r * 0.08, cy + r * 0.05, r, r * 0.95, 10, 0.15), true), leaf, 0.8));
      painting.push(el('path', { d: brushStroke(rng, looseCircle(rng, x, cy, r, 1.15), weight), fill: inkHex }));
      const sideX = lightFromLeft ? x : x - r;
      defs.push(el('clipPath', { id: `canopy${index}` }, el('circle', { cx: x, cy, r: r * 0.92 })));
      painting.push(
        el('path', {
          d: hatch(rng, { x: sideX, y: cy - r, w: r, h: r * 2 }, Math.max(3, r * 0.12), Math.PI / 4),
          'clip-path': `url(#canopy${index})`,
          fill: 'none',
          stroke: inkHex,
          'stroke-width': weight * 0.35,
          'stroke-opacity': 0.6,
          'stroke-linecap': 'round',
        }),
      );
    } else if (prop.variant < 0.75) {
      // Fir: a washed triangle under a zigzag ink outline.
      const half = size * 0.22;
      const top = ground - size * 1.1;
      const zig: Point[] = [{ x: x - half * 0.15, y: ground - size * 0.12 }];
      const tiers = 4;
      for (let k = 0; k < tiers; k++) {
        const t0 = k / tiers;
        const y = ground - size * 0.12 - (ground - size * 0.12 - top) * t0;
        zig.push({ x: x - half * (1 - t0), y }, { x: x - half * (1 - t0) * 0.45, y: y - size * 0.16 });
      }
      zig.push({ x, y: top });
      for (let k = tiers - 1; k >= 0; k--) {
        const t0 = k / tiers;
        const y = ground - size * 0.12 - (ground - size * 0.12 - top) * t0;
        zig.push({ x: x + half * (1 - t0) * 0.45, y: y - size * 0.16 }, { x: x + half * (1 - t0), y });
      }
      zig.push({ x: x + half * 0.15, y: ground - size * 0.12 });
      painting.push(wash(`M${fmt(x - half)} ${fmt(ground - size * 0.1)}L${fmt(x + 3)} ${fmt(top + 4)}L${fmt(x + half + 3)} ${fmt(ground - size * 0.08)}Z`, leaf, 0.8));
      painting.push(el('path', { d: `M${fmt(x)} ${fmt(ground)}L${fmt(x)} ${fmt(ground - size * 0.2)}`, stroke: inkHex, 'stroke-width': weight * 1.3, 'stroke-linecap': 'round' }));
      painting.push(el('path', { d: brushStroke(rng, wobble(rng, zig, 0.8, size * 0.2), weight), fill: inkHex }));
    } else {
      // Sketchy cottage: washed walls and roof, inked edges drawn twice.
      const bw = size * 0.75;
      const bh = size * 0.5;
      const left = x - bw / 2;
      const roofTop = ground - bh - size * 0.38;
      const walls: Point[] = [
        { x: left, y: ground },
        { x: left, y: ground - bh },
        { x: left + bw, y: ground - bh },
        { x: left + bw, y: ground },
      ];
      const roof: Point[] = [
        { x: left - bw * 0.1, y: ground - bh },
        { x, y: roofTop },
        { x: left + bw * 1.1, y: ground - bh },
      ];
      painting.push(wash(`M${walls.map((p) => `${fmt(p.x)} ${fmt(p.y)}`).join('L')}Z`, pigment(palette.horizon, 0.2), 0.85));
      painting.push(wash(`M${roof.map((p) => `${fmt(p.x)} ${fmt(p.y)}`).join('L')}Z`, pigment(palette.accent, 0.1), 0.85));
      for (let pass = 0; pass < 2; pass++) {
        painting.push(el('path', { d: brushStroke(rng, wobble(rng, walls, 1.2, size * 0.08), weight), fill: inkHex }));
        painting.push(el('path', { d: brushStroke(rng, wobble(rng, roof, 1.2, size * 0.08), weight), fill: inkHex }));
      }
      painting.push(el('rect', { x: x - bw * 0.1, y: ground - bh * 0.55, width: bw * 0.2, height: bh * 0.55, fill: 'none', stroke: inkHex, 'stroke-width': weight * 0.6, 'stroke-linejoin': 'round' }));
    }
  });

  // Birds as two quick arcs each.
  const birds = flock(rng, w, horizon, unit).map(
    ({ x, y, s }) => `M${fmt(x - s)} ${fmt(y)}q${fmt(s * 0.5)} ${fmt(-s * 0.6)} ${fmt(s)} 0q${fmt(s * 0.5)} ${fmt(-s * 0.6)} ${fmt(s)} 0`,
  );
  painting.push(el('path', { d: birds.join(''), fill: 'none', stroke: inkHex, 'stroke-width': unit * 0.003, 'stroke-linecap': 'round' }));

  body.push(el('g', { 'clip-path': 'url(#sheet)' }, painting.join('')));

  // Paper tooth over everything: tileable noise computed once per tile.
  defs.push(
    el(
      'filter',
      { id: 'tooth', x: 0, y: 0, width: '100%', height: '100%', 'color-interpolation-filters': 'sRGB' },
      el('feTurbulence', { type: 'fractalNoise', baseFrequency: 0.6, numOctaves: 2, seed: rng.int(1, 9999), stitchTiles: 'stitch' }) +
        // Dark flecks only: grey at the ink's lightness, alpha rising where the noise is low.
        el('feColorMatrix', { type: 'matrix', values: `0 0 0 0 ${fmt3(ink.l)} 0 0 0 0 ${fmt3(ink.l)} 0 0 0 0 ${fmt3(ink.l)} -2.6 0 0 0 1.4` }),
    ),
  );
  defs.push(el('pattern', { id: 'paper', width: TILE, height: TILE, patternUnits: 'userSpaceOnUse' }, el('rect', { width: TILE, height: TILE, filter: 'url(#tooth)' })));
  body.push(el('rect', { width: w, height: h, fill: 'url(#paper)', 'fill-opacity': 0.16 }));

  return { defs: defs.join(''), body: body.join('') };
}

function fmt3(n: number): string {
  return (Math.round(n * 1000) / 1000).toString();
}
