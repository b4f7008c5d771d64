import { formatEta } from './eta';

describe('formatEta', () => {
  it('shows a dash until something has finished', () => {
    expect(formatEta(100, 0)).toBe('-');
    expect(formatEta(100, NaN)).toBe('-');
    expect(formatEta(100, Infinity)).toBe('-');
  });

  it('reads the time left from the rate so far', () => {
    expect(formatEta(0, 0)).toBe('0s');
    expect(formatEta(10, 4)).toBe('3s');
    expect(formatEta(650, 10)).toBe('1m05s');
    expect(formatEta(50_000, 5)).toBe('2h46m');
  });
});
