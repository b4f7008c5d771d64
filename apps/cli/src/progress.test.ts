import { PassThrough } from 'node:stream';
import { BatchProgress } from './progress';

const zero = { queued: 10, active: 0, completed: 0, failed: 0, cancelled: 0 };

/** What the bar draws, on a stream that is not a terminal (drawn on every update). */
function drawn(run: (bar: BatchProgress) => void): string {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (d) => (out += d));
  const bar = new BatchProgress(stream, { noTTYOutput: true, notTTYSchedule: 0 });
  run(bar);
  bar.stop();
  return out;
}

describe('BatchProgress', () => {
  it('shows a dash for the time left until an item has finished, never INF or NULL', () => {
    const out = drawn((bar) => bar.start(10, zero));
    expect(out).toContain('0/10');
    expect(out).toContain('ETA -');
    expect(out).not.toMatch(/INF|NULL/);
  });

  it('shows the time left from the rate of this run once items finish', () => {
    const out = drawn((bar) => {
      bar.start(10, zero);
      bar.update(10, { ...zero, queued: 5, completed: 5 });
    });
    expect(out).toMatch(/5\/10 \| ok 5 .*\| ETA \d+s/);
    expect(out).not.toMatch(/INF|NULL/);
  });
});
