// README.md's performance figures are generated from bench/results.json: the block must be what
// the generator makes of the committed results, and the generator must notice a stale block.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const GENERATOR = path.join(ROOT, 'scripts/bench-readme.mjs');
const generate = (...args: string[]) => spawnSync(process.execPath, [GENERATOR, ...args], { cwd: ROOT, encoding: 'utf8' });

test('README performance block matches bench/results.json', () => {
  execFileSync(process.execPath, [GENERATOR, '--check'], { cwd: ROOT, stdio: 'pipe' });
});

test('the generator notices a stale block, replaces only the block, and is deterministic', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-readme-'));
  try {
    const file = path.join(dir, 'README.md');
    writeFileSync(file, 'before\n<!-- bench:start -->\nold figures\n<!-- bench:end -->\nafter\n');
    expect(generate('--check', `--readme=${file}`).status).toBe(1);
    expect(generate(`--readme=${file}`).status).toBe(0);
    const once = readFileSync(file, 'utf8');
    expect(once).not.toContain('old figures');
    expect(once.startsWith('before\n<!-- bench:start -->')).toBe(true);
    expect(once.endsWith('<!-- bench:end -->\nafter\n')).toBe(true);
    expect(generate('--check', `--readme=${file}`).status).toBe(0);
    expect(generate(`--readme=${file}`).status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(once);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
