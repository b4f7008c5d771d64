/** BullMQ's default cap of a queue's event stream, used when the queue's meta names none. */
const DEFAULT_MAX_EVENTS = 10000;

/**
 * Lua piece of the record transition (needs ISO_TIME): what the dashboard shows of a stage
 * change, written in the same step instead of in round trips of their own. It writes what
 * BullMQ's `job.updateProgress` and `job.log` write: the job hash's `progress` (the record's,
 * which only rises) with a `progress` event on the queue's event stream, and one line on the
 * job's log. Nothing happens when no job is named (its slot holds the record key) or the job
 * is gone.
 *
 * `reportToJob(now, line, id)` (`id`: the generation's, which is its job's) expects KEYS[15] the
 * job hash, KEYS[16] the queue's event stream, KEYS[17] the queue's meta hash, KEYS[18] the job's
 * log list.
 */
export const REPORT_TO_JOB = `
local function reportToJob(now, line, id)
  if line == '' or KEYS[15] == KEYS[1] or redis.call('EXISTS', KEYS[15]) == 0 then return end
  local progress = redis.call('HGET', KEYS[1], 'progress') or '0'
  local maxEvents = redis.call('HGET', KEYS[17], 'opts.maxLenEvents') or ${DEFAULT_MAX_EVENTS}
  redis.call('HSET', KEYS[15], 'progress', progress)
  redis.call('XADD', KEYS[16], 'MAXLEN', '~', maxEvents, '*', 'event', 'progress', 'jobId', id, 'data', progress)
  redis.call('RPUSH', KEYS[18], isoTime(now) .. ' ' .. line)
end
`;
