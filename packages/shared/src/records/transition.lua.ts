/**
 * Atomic record update. Refuses to touch a record that is already terminal, so a late
 * worker write can never resurrect a cancelled or finished generation. `progress` only
 * rises; a field named `?x` is set only when absent; an empty value deletes the field.
 * Terminal records get their retention TTL; others lose any provisional one.
 *
 * KEYS[1] record hash
 * ARGV[1] channel, ARGV[2] event type ('' = publish nothing), ARGV[3] retention seconds,
 * ARGV[4..] field, value, field, value, ...
 * Returns 'ok' | 'missing' | 'terminal'.
 */
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
else
  -- a worker touching the record proves its job exists: drop any provisional expiry
  redis.call('PERSIST', KEYS[1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[1], '{"type":"' .. ARGV[2] .. '","status":"' .. status .. '"}')
end
return 'ok'
`;
