import type { CliError } from './client';

/** Told after a failed try that will be tried again: the failure, how many so far, and the pause before the next. */
export type RetryNotice = (err: CliError, failures: number, delayMs: number) => void;

const seconds = (ms: number) => (ms < 10_000 ? (ms / 1000).toFixed(1).replace(/\.0$/, '') : String(Math.round(ms / 1000)));

/**
 * Tells the user now and then that the run is waiting on something that fails: minutes of silent
 * retries look like a hang. One clock for every retry loop of the run, so that downloads failing
 * side by side make one line, not one each: the first failure is told, then one at most every `everyMs`.
 */
export function retryNotices(write: (line: string) => void, everyMs = 30_000, now: () => number = Date.now): RetryNotice {
  let last: number | undefined;
  return (err, failures, delayMs) => {
    if (last !== undefined && now() - last < everyMs) return;
    last = now();
    const reason = err.message.split('\n')[0];
    write(`imagegen: ${reason}; trying again in ${seconds(delayMs)} s (${failures} failed ${failures === 1 ? 'try' : 'tries'})`);
  };
}

/** The run's notices, on stderr. */
export const noticeOnStderr: RetryNotice = retryNotices((line) => process.stderr.write(`${line}\n`));
