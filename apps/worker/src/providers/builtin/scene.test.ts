import sharp from 'sharp';
import { composeScene, DIMENSIONS, type Size, type Style } from './scene';

const STYLES: readonly Style[] = ['PHOTOGRAPHIC', 'VECTOR_IMAGE', 'ILLUSTRATION', '3D'];
const SIZES: readonly Size[] = ['LANDSCAPE', 'PORTRAIT', 'SQUARE'];
// Relations between styles must hold for any topic, so they are checked on several.
const TOPICS = ['mountain lake at dawn', 'a robot reading a book', 'pizza party', 'x'];

interface Features {
  /** Distinct RGB values in a nearest-neighbour downsample (no new colours invented by resampling). */
  colours: number;
  /** Share of pixels covered by the 24 most common colours: ~1 for flat art. */
  top24: number;
  /** Share of horizontally adjacent pixel pairs that differ at all: grain and texture push this up. */
  noise: number;
  /** Per-mille of adjacent pairs with a jump of 24+ grey levels: crisp ink lines push this up. */
  edges: number;
  entropy: number;
}

async function rasterize(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function features(png: Buffer): Promise<Features> {
  const small = await sharp(png).removeAlpha().resize(256, null, { kernel: 'nearest' }).raw().toBuffer();
  const counts = new Map<number, number>();
  for (let i = 0; i + 2 < small.length; i += 3) {
    const key = ((small[i] ?? 0) << 16) | ((small[i + 1] ?? 0) << 8) | (small[i + 2] ?? 0);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const pixels = small.length / 3;
  const top24 = [...counts.values()]
    .sort((a, b) => b - a)
    .slice(0, 24)
    .reduce((sum, n) => sum + n, 0);

  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  let pairs = 0;
  let differing = 0;
  let jumps = 0;
  for (let y = 0; y < info.height; y += 2) {
    const row = y * info.width;
    for (let x = 1; x < info.width; x++) {
      const d = Math.abs((data[row + x] ?? 0) - (data[row + x - 1] ?? 0));
      pairs++;
      if (d > 0) differing++;
      if (d >= 24) jumps++;
    }
  }
  const { entropy } = await sharp(png).stats();
  return { colours: counts.size, top24: top24 / pixels, noise: differing / pairs, edges: (jumps / pairs) * 1000, entropy };
}

describe('composeScene', () => {
  it('is deterministic for the same input', () => {
    for (const style of STYLES) {
      const a = composeScene({ topic: 'lighthouse', style, size: 'SQUARE' });
      const b = composeScene({ topic: 'lighthouse', style, size: 'SQUARE' });
      expect(a.svg).toBe(b.svg);
    }
  });

  it('varies with topic, style and size', () => {
    const svgs = new Set<string>();
    for (const topic of ['lighthouse', 'Lighthouse', 'lighthouse ']) {
      for (const style of STYLES) svgs.add(composeScene({ topic, style, size: 'LANDSCAPE' }).svg);
    }
    svgs.add(composeScene({ topic: 'lighthouse', style: 'PHOTOGRAPHIC', size: 'PORTRAIT' }).svg);
    expect(svgs.size).toBe(3 * STYLES.length + 1);
  });

  it('makes different topics look different, not just serialise differently', async () => {
    const thumbs = await Promise.all(
      ['volcano', 'teacup', 'harbour at night'].map(async (topic) => {
        const png = await rasterize(composeScene({ topic, style: 'VECTOR_IMAGE', size: 'SQUARE' }).svg);
        return sharp(png).removeAlpha().resize(64, 64).raw().toBuffer();
      }),
    );
    for (let i = 0; i < thumbs.length; i++) {
      for (let j = i + 1; j < thumbs.length; j++) {
        const a = thumbs[i] as Buffer;
        const b = thumbs[j] as Buffer;
        let diff = 0;
        for (let k = 0; k < a.length; k++) diff += Math.abs((a[k] ?? 0) - (b[k] ?? 0));
        // Mean absolute difference per channel, 0..255.
        expect(diff / a.length).toBeGreaterThan(10);
      }
    }
  });

  it.each(SIZES)('rasterizes %s at the documented dimensions in every style', async (size) => {
    for (const style of STYLES) {
      const scene = composeScene({ topic: 'dimensions', style, size });
      expect({ width: scene.width, height: scene.height }).toEqual(DIMENSIONS[size]);
      const meta = await sharp(await rasterize(scene.svg)).metadata();
      expect({ style, width: meta.width, height: meta.height }).toEqual({ style, ...DIMENSIONS[size] });
    }
  });

  it('emits self-consistent SVG: finite numbers, unique ids, no dangling references', () => {
    for (const topic of ['integrity a', 'integrity b', 'integrity c', 'integrity d', 'integrity e']) {
      for (const style of STYLES) {
        for (const size of SIZES) {
          const { svg } = composeScene({ topic, style, size });
          expect(svg).not.toMatch(/NaN|Infinity|undefined/);
          const ids = [...svg.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
          expect(new Set(ids).size).toBe(ids.length);
          for (const ref of svg.matchAll(/url\(#([^)]+)\)/g)) expect(ids).toContain(ref[1]);
          // Keeps rasterization cheap: no runaway element counts.
          expect((svg.match(/<[a-zA-Z]/g) ?? []).length).toBeLessThan(400);
        }
      }
    }
  });

  it('uses the intended SVG vocabulary per style', () => {
    for (const topic of TOPICS) {
      const svg = (style: Style): string => composeScene({ topic, style, size: 'LANDSCAPE' }).svg;
      const vector = svg('VECTOR_IMAGE');
      expect(vector).not.toMatch(/Gradient|<filter|opacity/);
      const photo = svg('PHOTOGRAPHIC');
      expect(photo).toContain('feGaussianBlur');
      expect(photo).toContain('feTurbulence');
      expect(photo).toContain('linearGradient');
      expect(photo).toContain('radialGradient');
      const illustration = svg('ILLUSTRATION');
      expect(illustration).toContain('stroke-linecap="round"');
      expect(illustration).toContain('clip-path');
      const threeD = svg('3D');
      expect(threeD).toContain('radialGradient');
      expect(threeD).not.toContain('<filter');
    }
  });

  it('renders styles that are measurably different', async () => {
    for (const topic of TOPICS) {
      const f = {} as Record<Style, Features>;
      for (const style of STYLES) f[style] = await features(await rasterize(composeScene({ topic, style, size: 'LANDSCAPE' }).svg));
      const ctx = `${topic}: ${JSON.stringify(f)}`;
      const check = (cond: boolean, what: string): void => {
        if (!cond) throw new Error(`${what} — ${ctx}`);
      };

      // Flat vector art: a handful of solid colours cover almost every pixel.
      check(f.VECTOR_IMAGE.top24 > 0.9, 'vector top-24 colours cover >90%');
      check(f.PHOTOGRAPHIC.top24 < 0.3, 'photographic is not flat');
      check(f.VECTOR_IMAGE.colours * 10 < f.PHOTOGRAPHIC.colours, 'vector has far fewer colours than photographic');
      check(f.VECTOR_IMAGE.colours * 3 < f['3D'].colours, 'vector has fewer colours than shaded 3D');

      // Film grain: nearly every neighbouring pixel pair differs in the photo.
      check(f.PHOTOGRAPHIC.noise > 0.6, 'photographic has grain');
      check(f.PHOTOGRAPHIC.noise > 4 * f.VECTOR_IMAGE.noise, 'photographic grainier than vector');
      check(f.PHOTOGRAPHIC.noise > 2 * f['3D'].noise, 'photographic grainier than 3D');
      check(f.PHOTOGRAPHIC.entropy > f.VECTOR_IMAGE.entropy + 1, 'photographic has more entropy than vector');

      // Ink: illustration has many more hard light/dark jumps than the soft styles.
      check(f.ILLUSTRATION.edges > 3 * f.PHOTOGRAPHIC.edges, 'illustration inkier than photographic');
      check(f.ILLUSTRATION.edges > 3 * f['3D'].edges, 'illustration inkier than 3D');

      // 3D: smooth shading (many colours) without grain or ink.
      check(f['3D'].colours > 3 * f.VECTOR_IMAGE.colours, '3D is shaded');
      check(f['3D'].noise < 0.5 * f.ILLUSTRATION.noise, '3D is smoother than illustration');
      check(f['3D'].colours < f.PHOTOGRAPHIC.colours, '3D has fewer colours than grainy photographic');
    }
  });

  it('rejects styles and sizes outside the enums instead of rendering garbage', () => {
    expect(() => composeScene({ topic: 't', style: 'WATERCOLOR' as Style, size: 'SQUARE' })).toThrow(RangeError);
    expect(() => composeScene({ topic: 't', style: '3D', size: 'toString' as Size })).toThrow(RangeError);
  });

  it('keeps hostile topics out of the SVG', async () => {
    const topic = `<script>alert("x")</script>"&'</svg><text>` + '🦄👩‍🚀🏳️‍🌈' + '\u0000\uD800' + 'A&amp;'.repeat(800);
    expect(topic.length).toBeGreaterThan(4000);
    for (const style of STYLES) {
      const { svg, width, height } = composeScene({ topic, style, size: 'PORTRAIT' });
      expect(svg).toMatch(/^[\x20-\x7e]*$/);
      expect(svg).not.toMatch(/script|alert|&|<text|A&amp;/i);
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.endsWith('</svg>')).toBe(true);
      const tags = new Set([...svg.matchAll(/<\/?([A-Za-z]+)/g)].map((m) => m[1]));
      for (const tag of tags) {
        expect(['svg', 'defs', 'g', 'rect', 'circle', 'ellipse', 'path', 'polygon', 'polyline', 'linearGradient', 'radialGradient', 'stop', 'filter', 'feGaussianBlur', 'feTurbulence', 'feColorMatrix', 'pattern', 'clipPath']).toContain(tag);
      }
      const meta = await sharp(await rasterize(svg)).metadata();
      expect({ width: meta.width, height: meta.height }).toEqual({ width, height });
    }
  });

  it('reports rasterization time per style (informational)', async () => {
    const previous = sharp.concurrency();
    sharp.concurrency(1);
    try {
      const rows: string[] = [];
      for (const style of STYLES) {
        const wall: number[] = [];
        // CPU time of this process (sharp's threads included) is far less
        // sensitive to other load on the machine than wall time.
        const cpu: number[] = [];
        for (const size of SIZES) {
          for (const topic of ['speed one', 'speed two', 'speed three']) {
            const { svg } = composeScene({ topic, style, size });
            const cpuStart = process.cpuUsage();
            const started = performance.now();
            await rasterize(svg);
            wall.push(performance.now() - started);
            const used = process.cpuUsage(cpuStart);
            cpu.push((used.user + used.system) / 1000);
          }
        }
        const median = (xs: number[]): string => ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0).toFixed(0).padStart(4);
        const max = (xs: number[]): string => Math.max(...xs).toFixed(0).padStart(4);
        rows.push(`${style.padEnd(13)} wall median ${median(wall)} ms, max ${max(wall)} ms | cpu median ${median(cpu)} ms, max ${max(cpu)} ms`);
      }
      console.log(`composeScene svg→png time per image (sharp, 1 thread, 3 sizes × 3 topics)\n${rows.join('\n')}`);
      expect(rows).toHaveLength(STYLES.length);
    } finally {
      sharp.concurrency(previous);
    }
  });
});
