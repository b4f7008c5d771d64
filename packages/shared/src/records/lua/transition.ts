import { batchCountsLua } from './batch';
import { webhookOutboxLua } from './outbox';
import { APPLY_FIELDS, compose, IS_TERMINAL, ISO_TIME, NOW_MS, statusIndexSlots } from './pieces';
import { COUNT_USAGE, countTerminalUsageLua } from './usage';

/**
 * Atomic record update. Refuses to touch a record that is already terminal, so a late
 * worker write can never resurrect a cancelled or finished generation. `progress` only
 * rises; a field named `?x` is set only when absent; an empty value deletes the field.
 * A change of status moves the id between the tenant's status indexes in the same step.
 *
 * Reaching a terminal status bounds everything the generation left: the record expires
 * after the retention (and is scheduled for the retention sweep, which also clears its
 * index entries), its spooled bytes are dropped, and its files are scheduled for removal
 * when the retention ends (completed) or after a grace period (failed, cancelled: no URL
 * points at their files, but a cancelled worker may still be finishing a write).
 * Anything else proves the job exists: a provisional expiry is dropped. The change's event
 * is published for live listeners and, when the record's webhook wants it, appended to the
 * webhook outbox in the same step (see outbox.ts), so no event is lost with a process.
 *
 * KEYS[1] record, KEYS[2] file expiry, KEYS[3] record expiry, KEYS[4] spool,
 * KEYS[5..9] the tenant's status indexes, KEYS[10] the webhook outbox stream, KEYS[11] the
 * tenant's usage counters (see usage.ts: a terminal status is counted there),
 * KEYS[12] the batch, KEYS[13] its items list, KEYS[14] the batch expiry set (for a generation
 * outside any batch: the record key again, three times; see batch.ts)
 * ARGV[1] channel, ARGV[2] event type ('' = publish nothing), ARGV[3] retention seconds,
 * ARGV[4] grace seconds for files of failed or cancelled generations, ARGV[5] the batch channel
 * ('' = none), ARGV[6..] field, value, ...
 * Returns 'ok' | 'missing' | 'terminal'.
 */
export const TRANSITION_LUA = compose(
  IS_TERMINAL,
  NOW_MS,
  ISO_TIME,
  APPLY_FIELDS,
  COUNT_USAGE,
  statusIndexSlots(5),
  `
local record = redis.call('HMGET', KEYS[1], 'status', 'id', 'tenant', 'fileToken')
local cur, id, tenant, token = record[1], record[2], record[3], record[4]
if not cur then return 'missing' end
if isTerminal(cur) then return 'terminal' end
local now = nowMs()
local status = applyFields(KEYS[1], 6, now) or cur
if status ~= cur then
  redis.call('ZREM', KEYS[STATUS_INDEX[cur]], id)
  redis.call('ZADD', KEYS[STATUS_INDEX[status]], 0, id)
end
if isTerminal(status) then
  local retention = tonumber(ARGV[3])
  redis.call('EXPIRE', KEYS[1], retention)
  redis.call('ZADD', KEYS[3], now + retention * 1000, id .. '|' .. tenant)
  redis.call('HDEL', KEYS[1], 'spoolKey', 'upstreamLease')
  redis.call('DEL', KEYS[4])
  if token then
    local keep = status == 'completed' and retention or math.min(retention, tonumber(ARGV[4]))
    redis.call('ZADD', KEYS[2], now + keep * 1000, token)
  end
  ${countTerminalUsageLua('KEYS[11]')}
else
  redis.call('PERSIST', KEYS[1])
end
${batchCountsLua({ batch: 'KEYS[12]', items: 'KEYS[13]', expiry: 'KEYS[14]', outbox: 'KEYS[10]', channel: 'ARGV[5]', retention: 'ARGV[3]' })}
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[1], '{"type":"' .. ARGV[2] .. '","status":"' .. status .. '"}')
  ${webhookOutboxLua('KEYS[10]')}
end
return 'ok'
`,
);
