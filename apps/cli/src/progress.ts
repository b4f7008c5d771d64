import type { Writable } from 'node:stream';
import { Presets, SingleBar, type Options } from 'cli-progress';
import type { BatchCounts as Counts } from '@imagegen/shared/schemas';
import { formatEta } from './eta';

const finished = (c: Counts) => c.completed + c.failed + c.cancelled;

/**
 * The batch's progress bar. Its time left is a field of our own (`left`): cli-progress fills
 * `{eta}` itself after the values it is given, so one passed under that name never showed, and
 * its own read "INF" or "NULL" until an item finished.
 */
export class BatchProgress {
  private readonly bar: SingleBar;
  private started = 0;
  private finishedAtStart = 0;

  constructor(stream: Writable = process.stderr, options: Partial<Options> = {}) {
    this.bar = new SingleBar(
      // not a terminal (a log file, CI): a plain line every 10 s instead of a bar drawn in place
      { format: '{bar} {percentage}% | {value}/{total} | ok {completed} failed {failed} cancelled {cancelled} | {rate}/s | ETA {left}', hideCursor: true, stream, noTTYOutput: true, notTTYSchedule: 10_000, ...options },
      Presets.shades_classic,
    );
  }

  start(total: number, counts: Counts): void {
    this.started = Date.now();
    this.finishedAtStart = finished(counts);
    this.bar.start(total, this.finishedAtStart, { ...counts, rate: '0.0', left: formatEta(total - this.finishedAtStart, 0) });
  }

  update(total: number, counts: Counts): void {
    // the rate of this run: items finished before a resume are not counted as done in it
    const perSecond = (finished(counts) - this.finishedAtStart) / Math.max(1, (Date.now() - this.started) / 1000);
    this.bar.update(finished(counts), { ...counts, rate: perSecond.toFixed(1), left: formatEta(total - finished(counts), perSecond) });
  }

  stop(): void {
    this.bar.stop();
  }
}
