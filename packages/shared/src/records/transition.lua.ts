import { WEBHOOK_OUTBOX_LUA } from './outbox.lua';

/**
 * Atomic record update. Refuses to touch a record that is already terminal, so a late
 * worker write can never resurrect a cancelled or finished generation. `progress` only
 * rises; a field named `?x` is set only when absent; an empty value deletes the field.
 * Terminal records get their retention TTL; others lose any provisional one.
 *
 * Reaching a terminal status also schedules the record's files for removal: when the
 * record's retention ends (completed), or after a grace period (failed, cancelled: no URL
 * points at their files, but a cancelled worker may still be finishing a write).
 *
 * KEYS[1] record hash, KEYS[2] file expiry sorted set, KEYS[3] webhook outbox stream (see outbox.lua.ts)
 * ARGV[1] channel, ARGV[2] event type ('' = publish nothing), ARGV[3] retention seconds,
 * ARGV[4..] field, value, field, value, ...
 * Returns 'ok' | 'missing' | 'terminal'.
 */
/** Files of failed or cancelled generations are removed after this long. */
export const FAILED_FILES_GRACE_SECONDS = 3600;

export const TRANSITION_LUA = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
if cur == 'completed' or cur == 'failed' or cur == 'cancelled' then return 'terminal' end
local status = cur
for i = 4, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if string.sub(f, 1, 1) == '?' then
    redis.call('HSETNX', KEYS[1], string.sub(f, 2), v)
  elseif f == 'progress' then
    local p = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
    if tonumber(v) > p then redis.call('HSET', KEYS[1], 'progress', v) end
  elseif v == '' then
    redis.call('HDEL', KEYS[1], f)
  else
    redis.call('HSET', KEYS[1], f, v)
  end
  if f == 'status' then status = v end
end
if status == 'completed' or status == 'failed' or status == 'cancelled' then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  local token = redis.call('HGET', KEYS[1], 'fileToken')
  if token then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local keep = status == 'completed' and tonumber(ARGV[3]) or ${FAILED_FILES_GRACE_SECONDS}
    redis.call('ZADD', KEYS[2], now + keep * 1000, token)
  end
else
  -- a worker touching the record proves its job exists: drop any provisional expiry
  redis.call('PERSIST', KEYS[1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[1], '{"type":"' .. ARGV[2] .. '","status":"' .. status .. '"}')
  ${WEBHOOK_OUTBOX_LUA}
end
return 'ok'
`;

/**
 * Claims the right to call the upstream for a generation. Refused while another runner's
 * lease is live (a job whose lock was lost and re-queued must not pay twice), and when a
 * checkpoint already makes the call unnecessary.
 *
 * KEYS[1] record hash; ARGV[1] owner, ARGV[2] now (ms), ARGV[3] lease length (ms)
 * Returns { outcome, detail }: 'ok' | 'terminal' | 'checkpointed' | 'busy' (detail: lease expiry ms) | 'missing'.
 */
export const CLAIM_UPSTREAM_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if status == 'completed' or status == 'failed' or status == 'cancelled' then return {'terminal', ''} end
if redis.call('HEXISTS', KEYS[1], 'original') == 1 or redis.call('HEXISTS', KEYS[1], 'upstreamUrl') == 1
  or redis.call('HEXISTS', KEYS[1], 'spoolKey') == 1 then
  return {'checkpointed', ''}
end
local lease = redis.call('HGET', KEYS[1], 'upstreamLease')
if lease then
  local sep = string.find(lease, '|', 1, true)
  local owner = string.sub(lease, 1, sep - 1)
  local expires = tonumber(string.sub(lease, sep + 1))
  if owner ~= ARGV[1] and expires > tonumber(ARGV[2]) then return {'busy', tostring(expires)} end
end
redis.call('HSET', KEYS[1], 'upstreamLease', ARGV[1] .. '|' .. (tonumber(ARGV[2]) + tonumber(ARGV[3])))
return {'ok', ''}
`;

/** Drops a provisional expiry, unless the record is already terminal (its retention TTL stays). */
export const CONFIRM_LUA = `
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
  redis.call('PERSIST', KEYS[1])
end
return 1
`;
