import { generateJobName } from './catalog';

it('names a job by its topic on one line, cut at 47 characters, never inside one', () => {
  expect(generateJobName('  a sunset\n over  the sea ')).toBe('generate · a sunset over the sea');
  const waves = generateJobName('🌊'.repeat(2001));
  // before: cut between the halves of a surrogate pair, a broken character stored in Redis
  expect(waves).not.toMatch(/\p{Surrogate}/u);
  expect(waves).toBe(`generate · ${'🌊'.repeat(47)}…`);
  expect(generateJobName('x'.repeat(48))).toBe(`generate · ${'x'.repeat(48)}`);
  expect(generateJobName('x'.repeat(49))).toBe(`generate · ${'x'.repeat(47)}…`);
});
