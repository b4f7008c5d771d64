// bench/results.json and the figures table (printed by the bench, put into README.md by
// scripts/bench-readme.mjs): one renderer for both, deterministic for a given results file.
import { createRequire } from 'node:module';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

export function machineInfo({ quick, redisVersion, sections, durationS }) {
  const sharp = require('sharp');
  return {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    sections,
    durationS: Math.round(durationS),
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    redis: redisVersion ?? 'unknown',
    sharp: sharp.versions.sharp,
    libvips: sharp.versions.vips,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
  };
}

export async function writeResults(file, machine, figures) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ machine, figures }, null, 2)}\n`);
}

/** 3 significant figures at most, no exponent: 0.0123, 1.23, 12.3, 123, 12345. */
export function num(n) {
  if (n === undefined || n === null) return '—';
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const targetText = (t) => (t ? `${t.on === 'ratio' ? 'ratio ' : ''}${t.op === '>=' ? '≥' : '≤'} ${t.value}` : '');
const metText = (r) => (r.met === undefined ? '' : r.met ? 'met' : '**not met**');
const cell = (s) => String(s).replace(/\|/g, '\\|');

/** The figures as a Markdown table; `withBaselineIs` adds the column saying what each baseline is. */
export function renderTable(figures, { withBaselineIs = true } = {}) {
  const head = ['section', 'measure', 'imagegen', 'baseline', 'ratio', 'target', 'met', ...(withBaselineIs ? ['baseline is'] : [])];
  const rows = figures.map((r) => [
    r.section,
    r.name + (r.note ? ` (${r.note})` : ''),
    `${num(r.value)} ${r.unit}`,
    r.baseline === undefined ? '—' : `${num(r.baseline)} ${r.unit}`,
    r.ratio === undefined ? '—' : `${num(r.ratio)}×`,
    targetText(r.target) || '—',
    metText(r) || '—',
    ...(withBaselineIs ? [r.baselineIs ?? '—'] : []),
  ]);
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((c) => `| ${c.map(cell).join(' | ')} |`)].join('\n');
}

/** The product goals alone: one line each, value against target. */
export function renderTargets(figures) {
  return figures
    .filter((r) => r.target)
    .map((r) => `- ${r.section}: ${r.name}: ${r.target.on === 'ratio' ? `ratio ${num(r.ratio)}` : `${num(r.value)} ${r.unit}`}, target ${targetText(r.target).replace(/^ratio /, '')}: ${r.met ? 'met' : '**not met**'}`)
    .join('\n');
}
