import { batchCountsLua } from './batch';
import { CLAIM_UPSTREAM_FN } from './claim-upstream';
import { REPORT_TO_JOB } from './job-report';
import { webhookOutboxLua } from './outbox';
import { APPLY_FIELDS, compose, ID_TIME, IS_TERMINAL, ISO_TIME, NOW_MS, statusIndexSlots } from './pieces';
import { COUNT_USAGE, countTerminalUsageLua } from './usage';

/** KEYS every script built on `transitionRecord` takes, in this order. */
export const TRANSITION_KEY_COUNT = 19;

/**
 * Atomic record update, `transitionRecord(from)` with the fields from ARGV[from] on. Refuses
 * to touch a record that is already terminal, so a late worker write can never resurrect a
 * cancelled or finished generation. `progress` only rises; a field named `?x` is set only when
 * absent; an empty value deletes the field. A change of status moves the id between the
 * tenant's status indexes in the same step.
 *
 * Reaching a terminal status bounds everything the generation left: the record expires
 * after the retention (and is scheduled for the retention sweep, which also clears its
 * index entries), its spooled bytes are dropped, and its files are scheduled for removal
 * when the retention ends (completed) or after a grace period (failed, cancelled: no URL
 * points at their files, but a cancelled worker may still be finishing a write). An item of
 * a batch still running is owned by the sweep alone, which keeps it (and its image) until the
 * batch's retention ends.
 * Anything else proves the job exists: a provisional expiry is dropped. The change's event
 * is published for live listeners and, when the record's webhook wants it, appended to the
 * webhook outbox in the same step (see outbox.ts), so no event is lost with a process. A
 * terminal event carries the record itself, so a waiting request answers without reading it,
 * and goes to the channel the record names in `notify` too (see WaiterChannel).
 *
 * KEYS[1] record, KEYS[2] file expiry, KEYS[3] record expiry, KEYS[4] spool,
 * KEYS[5..9] the tenant's status indexes, KEYS[10] the webhook outbox stream, KEYS[11] the
 * tenant's usage counters (see usage.ts: a terminal status is counted there),
 * KEYS[12] the batch, KEYS[13] its items list, KEYS[14] the batch expiry set (for a generation
 * outside any batch: the record key again, three times; see batch.ts), KEYS[15..18] the job
 * to report the change to (see job-report.ts; the record key four times for none), KEYS[19] the
 * batch's finished-items stream (the record key again outside any batch)
 * ARGV[1] channel, ARGV[2] event type ('' = publish nothing), ARGV[3] retention seconds,
 * ARGV[4] grace seconds for files of failed or cancelled generations, ARGV[5] the batch channel
 * ('' = none), ARGV[6] the job's log line ('' = report nothing to the job)
 * Returns 'ok' | 'missing' | 'terminal'.
 */
const TRANSITION_FN = `
local function transitionRecord(from)
  local record = redis.call('HMGET', KEYS[1], 'status', 'id', 'tenant', 'fileToken', 'batchId')
  local cur, id, tenant, token, batchId = record[1], record[2], record[3], record[4], record[5]
  if not cur then return 'missing' end
  if isTerminal(cur) then return 'terminal' end
  local now = recordNowMs(id)
  local status = applyFields(KEYS[1], ARGV, from, now) or cur
  if status ~= cur then
    redis.call('ZREM', KEYS[STATUS_INDEX[cur]], id)
    redis.call('ZADD', KEYS[STATUS_INDEX[status]], 0, id)
  end
  if isTerminal(status) then
    local retention = tonumber(ARGV[3])
    -- an item of a batch still running is kept until its batch's retention ends (the sweep
    -- decides, see record-retention.ts), so the batch's results and archive still hold it
    local batch = batchId and KEYS[12] ~= KEYS[1] and redis.call('HMGET', KEYS[12], 'id', 'status')
    local held = batch and batch[1] == batchId and batch[2] ~= 'completed'
    if not held then redis.call('EXPIRE', KEYS[1], retention) end
    redis.call('ZADD', KEYS[3], now + retention * 1000, id .. '|' .. tenant)
    redis.call('HDEL', KEYS[1], 'spoolKey', 'upstreamLease')
    redis.call('DEL', KEYS[4])
    -- (a held item's image too: the sweep moves it on with the record, and a sweep that does not
    -- know of holding, during an upgrade, removes both at once rather than leave the image)
    if token then
      local keep = status == 'completed' and retention or math.min(retention, tonumber(ARGV[4]))
      redis.call('ZADD', KEYS[2], now + keep * 1000, token)
    end
    ${countTerminalUsageLua('KEYS[11]')}
  else
    redis.call('PERSIST', KEYS[1])
  end
  reportToJob(now, ARGV[6], id)
  if ARGV[2] ~= '' then
    local message = { type = ARGV[2], status = status, id = id }
    local notify = nil
    if isTerminal(status) then
      message.record = redis.call('HGETALL', KEYS[1])
      notify = redis.call('HGET', KEYS[1], 'notify')
    end
    local encoded = cjson.encode(message)
    redis.call('PUBLISH', ARGV[1], encoded)
    if notify then redis.call('PUBLISH', notify, encoded) end
    ${webhookOutboxLua('KEYS[10]')}
  end
  -- after the item's own event: the batch's webhook gets batch.completed after every item's
  ${batchCountsLua({ batch: 'KEYS[12]', items: 'KEYS[13]', expiry: 'KEYS[14]', finished: 'KEYS[19]', outbox: 'KEYS[10]', channel: 'ARGV[5]', retention: 'ARGV[3]' })}
  return 'ok'
end
`;

const TRANSITION_PIECES = [IS_TERMINAL, NOW_MS, ID_TIME, ISO_TIME, APPLY_FIELDS, COUNT_USAGE, REPORT_TO_JOB, statusIndexSlots(5), TRANSITION_FN];

/** KEYS and ARGV as above, the fields from ARGV[7]. */
export const TRANSITION_LUA = compose(...TRANSITION_PIECES, 'return transitionRecord(7)');

/**
 * A job's start, in one step: the transition to active (ARGV[9..] fields), then the lease on
 * securing the original (see claim-upstream.ts) for ARGV[7] owner, ARGV[8] lease (ms), then the
 * record as it now is. KEYS and ARGV[1..6] as the transition.
 * Returns { 'missing' | 'terminal' } | { 'ok', claim outcome, a, b, record hash as a flat list }.
 */
export const START_LUA = compose(
  ...TRANSITION_PIECES,
  CLAIM_UPSTREAM_FN,
  `
local outcome = transitionRecord(9)
if outcome ~= 'ok' then return {outcome} end
local claim = claimUpstream(KEYS[1], KEYS[11], ARGV[7], ARGV[8])
return {'ok', claim[1], claim[2], claim[3], redis.call('HGETALL', KEYS[1])}
`,
);

/**
 * Many items of one batch cancelled in one step, each by the transition above (their events,
 * batch counts, usage and bounds exactly as one by one), without a round trip and a read per
 * item. KEYS[1..19] as the transition, for the batch and its tenant (the record and spool slots
 * are taken by each item in turn); KEYS[20..] each item's record and spool keys, in pairs.
 * ARGV[1..6] as the transition (ARGV[1] taken by each item's channel in turn), ARGV[7] the
 * cancel channel (an item that was running is named there, so its worker stops at once),
 * ARGV[8] the number of items n, ARGV[9..8+n] their channels, then the fields.
 * Items already terminal or gone are left as they are. Returns how many were cancelled.
 */
export const CANCEL_ITEMS_LUA = compose(
  ...TRANSITION_PIECES,
  `
local n = tonumber(ARGV[8])
local cancelled = 0
for i = 1, n do
  KEYS[1] = KEYS[18 + 2 * i]
  KEYS[4] = KEYS[19 + 2 * i]
  ARGV[1] = ARGV[8 + i]
  local was = redis.call('HGET', KEYS[1], 'status')
  if was and not isTerminal(was) and transitionRecord(9 + n) == 'ok' then
    cancelled = cancelled + 1
    if was == 'active' then redis.call('PUBLISH', ARGV[7], redis.call('HGET', KEYS[1], 'id')) end
  end
end
return cancelled
`,
);
