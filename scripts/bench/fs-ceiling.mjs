// What a disk allows for the files of a generation: a bare loop that makes a new folder and writes
// `files` files of `bytes` each into it (each to a temporary name, then renamed, as the product
// writes), on `threads` threads at once, with nothing else to do. Generations' files per second.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

if (!isMainThread) {
  const { root, thread, generations, files, bytes } = workerData;
  const data = Buffer.alloc(bytes, 7);
  for (let g = 0; g < generations; g++) {
    const dir = path.join(root, `${thread}-${g}`);
    mkdirSync(dir);
    for (let f = 0; f < files; f++) {
      const tmp = path.join(dir, `.${f}.tmp`);
      writeFileSync(tmp, data);
      renameSync(tmp, path.join(dir, String(f)));
    }
  }
  parentPort.postMessage('done');
}

export async function fsCeiling(dataRoot, { generations, files, bytes, threads }) {
  const root = mkdtempSync(path.join(dataRoot, 'imagegen-fs-ceiling-'));
  try {
    const t0 = performance.now();
    const per = Math.ceil(generations / threads);
    await Promise.all(
      Array.from({ length: threads }, (_, thread) => {
        const w = new Worker(new URL(import.meta.url), { workerData: { root, thread, generations: per, files, bytes } });
        return new Promise((resolve, reject) => w.once('message', resolve).once('error', reject));
      }),
    );
    return (per * threads * 1000) / (performance.now() - t0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
