// A worker process for the benchmark: the product's worker runtime (config from the environment,
// as apps/worker/dist/main.js reads it) with an in-process upstream, since the real one is remote.
//
//   node scripts/bench/worker-process.mjs [--upstream-ms=N] [--upstream-jitter=J] [--images=noop|sharp] [--png=tiny|photo|jpeg]
//
// The upstream answers a PNG after N ms (0: at once; with J, each call uniformly within N × (1 ± J),
// N on average) and counts calls, calls in flight and their peak. With IPC, it sends { ready: true } once started and answers { type: 'stats' }.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const require = createRequire(import.meta.url);
const sharp = require('sharp');
const shared = require('@imagegen/shared');
const workerPkg = require('@imagegen/worker');

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const upstreamMs = Number(arg('upstream-ms', '0'));
const jitter = Number(arg('upstream-jitter', '0'));
const images = arg('images', 'sharp');
// photo: a noise-like 1344×768 PNG (2.4 MB, hard to compress and to decode); jpeg: the same size as
// an upstream's JPEG (~110 KB); tiny: a 64×64 flat PNG
const kind = arg('png', 'photo');
const noise = () => sharp(randomBytes(1344 * 768 * 3), { raw: { width: 1344, height: 768, channels: 3 } });
const png =
  kind === 'photo'
    ? await noise().blur(1.2).png().toBuffer()
    : kind === 'jpeg'
      ? await noise().blur(3).jpeg({ quality: 85 }).toBuffer()
      : await sharp({ create: { width: 64, height: 64, channels: 3, background: '#369' } }).png().toBuffer();
const contentType = kind === 'jpeg' ? 'image/jpeg' : 'image/png';

const counters = { calls: 0, inFlight: 0, peakInFlight: 0, returned: 0 };
const provider = {
  name: 'builtin',
  async generate(_req, ctx) {
    counters.calls++;
    counters.peakInFlight = Math.max(counters.peakInFlight, ++counters.inFlight);
    try {
      if (upstreamMs > 0) await new Promise((r) => setTimeout(r, upstreamMs * (1 - jitter + 2 * jitter * Math.random())));
      ctx.signal.throwIfAborted();
      counters.returned++;
      return { kind: 'bytes', data: png, contentType };
    } finally {
      counters.inFlight--;
    }
  },
};

const config = workerPkg.loadWorkerConfig(process.env);
const logger = shared.createLogger('worker', config.LOG_LEVEL, { format: config.LOG_FORMAT });
const runtime = await workerPkg.startWorkerRuntime(config, logger, { provider, ...(images === 'noop' ? { images: workerPkg.noopImageStage } : {}) });

process.on('message', (m) => {
  if (m?.type === 'stats') process.send({ reply: 'stats', ...counters, rss: process.memoryUsage().rss });
});
process.once('SIGTERM', () => runtime.close().then(() => process.exit(0), () => process.exit(1)));
process.send?.({ ready: true });
