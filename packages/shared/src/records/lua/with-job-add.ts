import type { Job } from 'bullmq';

/** ARGV of each of BullMQ's add scripts: packed arguments, the job's data, packed options (they follow its KEYS). */
export const BULLMQ_ADD_ARGS = 3;

/**
 * BullMQ's add of one job, as this BullMQ version would send it: the name of the script it
 * runs and that script's keys and arguments, all built by BullMQ itself.
 */
export interface JobAdd {
  /** BullMQ's versioned command, e.g. `addStandardJob:6.7.0`. */
  command: string;
  /** Its KEYS, then its ARGV. */
  args: unknown[];
  /** Hands BullMQ the script's answer (the job id, or its negative error code). */
  settle(reply: unknown): void;
}

/**
 * Runs `job.addJob` against a client that records the one script call instead of sending it.
 * BullMQ picks the script (standard, prioritized, delayed) and packs its options and data, so
 * the job is exactly what `queue.add` would have written.
 */
export function captureJobAdd(job: Job): JobAdd {
  let captured: { command: string; args: unknown[] } | undefined;
  let settle: (reply: unknown) => void = () => undefined;
  const client = {
    runCommand(command: string, args: unknown[]) {
      captured = { command, args };
      return new Promise((resolve) => (settle = resolve));
    },
  };
  // BullMQ checks the reply it is given; the real one arrives through `settle`
  job.addJob(client as never).catch(() => undefined);
  if (!captured) throw new Error('BullMQ did not add the job through runCommand: this BullMQ version is not supported');
  return { ...captured, settle: (reply) => settle(reply) };
}

/**
 * A script that adds several jobs, each with its own record write, in one call: for each item,
 * BullMQ's add script (`bullmq`, taking `bullmqKeys` keys and BULLMQ_ADD_ARGS arguments) and then
 * `after` (a script taking `after.keys` keys and `after.args` arguments). KEYS holds each item's
 * keys in turn (BullMQ's, then `after`'s), ARGV each item's arguments likewise. Each script runs
 * as a function whose parameters are named KEYS and ARGV, so none sees another's. `guard`
 * (optional, with `after`'s KEYS and ARGV) runs first: when it answers anything but nil, that is
 * the item's answer and nothing is added or written for it. When BullMQ refuses (a negative
 * code), `after` does not run and the answer is `{'refused', code}`; otherwise it is what `after`
 * answers. An error in one item (a key of the wrong type, say) is that item's answer,
 * `{'error', message}`, and the others go on: Redis keeps what a script wrote before an error, so
 * the items before it exist and must be answered as such. Returns the answers in item order.
 */
export function withJobAdds(bullmq: string, bullmqKeys: number, after: { lua: string; keys: number; args: number }, guard = 'return nil'): string {
  return `
local function bullmqAdd(KEYS, ARGV)
${bullmq}
end
local function after(KEYS, ARGV)
${after.lua}
end
local function guard(KEYS, ARGV)
${guard}
end
local function slice(t, from, count)
  return { unpack(t, from, from + count - 1) }
end
local function addOne(k, a)
  local ownKeys, ownArgs = slice(KEYS, k + ${bullmqKeys}, ${after.keys}), slice(ARGV, a + ${BULLMQ_ADD_ARGS}, ${after.args})
  local stop = guard(ownKeys, ownArgs)
  if stop ~= nil then return stop end
  local jobId = bullmqAdd(slice(KEYS, k, ${bullmqKeys}), slice(ARGV, a, ${BULLMQ_ADD_ARGS}))
  if type(jobId) == 'number' and jobId < 0 then return { 'refused', jobId } end
  return after(ownKeys, ownArgs)
end
local answers = {}
for i = 1, #KEYS / ${bullmqKeys + after.keys} do
  local ok, answer = pcall(addOne, (i - 1) * ${bullmqKeys + after.keys} + 1, (i - 1) * ${BULLMQ_ADD_ARGS + after.args} + 1)
  if not ok then
    answer = { 'error', type(answer) == 'table' and tostring(answer.err) or tostring(answer) }
  end
  -- by position: an item that answers nil must not shift the ones after it
  answers[i] = answer or false
end
return answers
`;
}
