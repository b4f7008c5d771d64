// Regenerates the figures in README.md's Performance section from bench/results.json, between
// the markers <!-- bench:start --> and <!-- bench:end -->. Deterministic: the same results file
// gives the same README. `--check` changes nothing and exits 1 when the README is out of date;
// `--readme=FILE` works on another file.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { renderTable, renderTargets } from './bench/output.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

/** What each section's baseline does, in words: the figures are only as honest as these. */
const BASELINES = {
  thumbnails: 'raw sharp written the strongest way: decode (and shrink to the largest size) once, then `clone()` the decoded pixels for each size and for the thumbhash; same sizes, format, quality and effort. A naive raw path that decodes the original again per size is shown too.',
  e2e: 'the same raw sharp thumbnails of the same 1344×768 noise-like PNG, as many images at once as the worker\'s `CPU_CONCURRENCY`, in one process; no HTTP, Redis, records or files. The product side is the API and a worker in processes of their own, an instant in-process upstream, and a load client in a third process sending every generation with `Prefer: wait=60` (64 open at once), timed from the first POST to the last completed answer.',
  sync: 'none: the figure is p50 (and p99) latency of sequential `Prefer: wait=60` submissions less the upstream time (0, instant upstream) and less the median time of the same raw sharp work run sequentially in the same run.',
  enqueue: 'in process, a bare BullMQ `queue.add` of the same job (name, data, options), 16 at once; over HTTP, a bare Express app in its own process whose handler parses the JSON body and does that `queue.add`, driven by the same load client (16 connections).',
  inflight: 'the most a worker with that many calls in flight can do against the upstream: peak in flight ÷ 2 s, the upstream\'s mean time (each call takes 1.5–2.5 s, uniformly: real calls vary, and identical times would keep 1,000 generations in lockstep, all coming back in one burst). The worker runs with `WORKER_CONCURRENCY=1000` and the no-op image stage against generations queued beforehand; steady state runs from the moment the first 1,000 have completed until the queue runs dry. The target is judged with DATA_DIR in memory (/dev/shm); the same run with DATA_DIR on the machine\'s disk is shown beside it, with that disk\'s own limit: a bare loop on every core making each generation\'s folder and files (as many, as large, written and renamed the same way) and nothing else.',
  roundtrips: 'a bare BullMQ process adding the same job and completing it at once in a Worker (concurrency 32). Counted with `MONITOR` on the bench\'s private Redis and attributed to processes by their sockets; a `MULTI`…`EXEC` block is one round trip; an idle window as long as the busy one is subtracted (maintenance scheduler, batch feeder, webhook dispatcher polls).',
  cpu: 'the bare BullMQ process above (add → process → complete) and its Redis. The product side is API + worker processes with the no-op image stage (the upstream answers a 1344×768 JPEG of about 110 KB, as an upstream would, which is still stored, with three tiny thumbnail files; storing a file is part of what a generation costs outside the image work), CPU from `/proc/<pid>/stat` and Redis `INFO cpu`, during the run; background work in that window is included. The worker\'s kernel time (system calls: creating and writing files, sockets) is shown apart, and the same run with DATA_DIR in memory (/dev/shm) beside it, since on a virtual machine\'s disk the kernel\'s part swings with the disk.',
  pipeline: 'a bare BullMQ worker in the same process doing the same image work (`makeThumbnails`) and file writes, with no records, stages, checkpoints or leases.',
  waiting: 'a client polling `GET` every 100 ms.',
  webhooks: 'four bare loops in the same process and run, each signing every body with standardwebhooks and POSTing it to the same kind of receiver (its own process, answering 200 at once over keep-alive), 50 at once: one through undici\'s dispatcher interface over a keep-alive pool, settled at the status line (the interface the worker sends with, and the strongest raw path: the ratio target is judged against it); one with undici `request` (its documented fast API, which adds a response stream per request); one with `fetch()` (what most code writes); and the dispatch loop fed from a Redis stream of ready bodies read with a consumer group, each answered event acknowledged and deleted (XACK + XDEL per turn of the event loop: durable, but no delivery log, host bounds or retries). The bodies are made before the loops start, so they do nothing but sign and send; the worker reads each event from the outbox, makes its body, logs the delivery, holds a host slot, records the attempt and acknowledges the event. Every side runs a warm-up first (the JIT, the connections, the receiver) and is counted over the deliveries after it, rate and CPU alike; the five run in interleaved rounds. The receiver\'s CPU is counted too: the machine\'s cores divided by the CPU per delivery of sender, Redis and receiver together is the most a side could reach however its work were spread over threads or processes, shown next to the dispatch loop\'s measured rate.',
  batches: 'a bare BullMQ `addBulk` of as many jobs.',
  scale: 'one worker process with `STORAGE=fs`; Redis capacity from `redis-benchmark`.',
};

export function renderBlock({ machine, figures }) {
  const sections = [...new Set(figures.map((f) => f.section))];
  return [
    START,
    `<!-- generated by \`npm run bench:readme\` from bench/results.json; do not edit by hand -->`,
    '',
    `${machine.mode === 'quick' ? 'Quick run (`npm run bench -- --quick`, small samples)' : 'Full run (`npm run bench`)'} of ${machine.date.slice(0, 10)}: ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}, Redis ${machine.redis}, sharp ${machine.sharp} / libvips ${machine.libvips}, UV_THREADPOOL_SIZE=${machine.uvThreadpoolSize}; ${machine.durationS} s in all.`,
    '',
    'Targets:',
    '',
    renderTargets(figures),
    '',
    renderTable(figures, { withBaselineIs: false }),
    '',
    'What each baseline is:',
    '',
    ...sections.map((s) => `- **${s}**: ${BASELINES[s] ?? 'see scripts/bench.'}`),
    END,
  ].join('\n');
}

export function updateReadme(readme, results) {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${START} … ${END} block`);
  return readme.slice(0, a) + renderBlock(results) + readme.slice(b + END.length);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = JSON.parse(await readFile(path.join(ROOT, 'bench/results.json'), 'utf8'));
  const file = path.resolve(ROOT, process.argv.find((a) => a.startsWith('--readme='))?.slice(9) ?? 'README.md');
  const readme = await readFile(file, 'utf8');
  const next = updateReadme(readme, results);
  if (process.argv.includes('--check')) {
    if (next !== readme) {
      console.error('README.md performance figures are out of date: run `npm run bench:readme`');
      process.exit(1);
    }
  } else if (next !== readme) {
    await writeFile(file, next);
    console.log('README.md performance figures updated from bench/results.json');
  }
}
