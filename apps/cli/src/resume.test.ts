import { resumeCommand, shellWord } from './resume';

describe('resumeCommand', () => {
  it('leaves plain paths as they are', () => {
    expect(resumeCommand('prompts.csv', 'images/', 'batch_abc')).toBe('imagegen batch prompts.csv --out images/ --resume batch_abc');
  });
  it('quotes paths a shell would split or expand', () => {
    expect(shellWord('my images')).toBe(`'my images'`);
    expect(shellWord(`it's $HOME`)).toBe(`'it'\\''s $HOME'`);
    expect(shellWord('')).toBe(`''`);
  });
});
