// README.md's performance figures are generated from bench/results.json: the block must be what
// the generator makes of the committed results, and the generator must notice a stale block.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const GENERATOR = path.join(ROOT, 'scripts/bench-readme.mjs');

test('README performance block matches bench/results.json', () => {
  execFileSync(process.execPath, [GENERATOR, '--check'], { cwd: ROOT, stdio: 'pipe' });
});

test('the generator is deterministic and replaces only its block', async () => {
  const { updateReadme } = await import(GENERATOR);
  const results = JSON.parse(readFileSync(path.join(ROOT, 'bench/results.json'), 'utf8'));
  const stale = 'before\n<!-- bench:start -->\nold figures\n<!-- bench:end -->\nafter\n';
  const once = updateReadme(stale, results);
  expect(once).not.toContain('old figures');
  expect(once.startsWith('before\n<!-- bench:start -->')).toBe(true);
  expect(once.endsWith('<!-- bench:end -->\nafter\n')).toBe(true);
  expect(updateReadme(once, results)).toBe(once);
});
