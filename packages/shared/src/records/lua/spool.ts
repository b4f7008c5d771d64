import { compose, NOW_MS } from './pieces';

/** The index's entries of one spool key: its key and size. */
const SPOOL_ENTRIES = `
local function spoolEntry(member)
  return string.match(member, '^(.*)|(%d+)$')
end
`;

/**
 * Spools a generation's paid-for bytes that could not be stored, unless every worker's spooled
 * bytes together would pass the budget: a store that is down for long must not fill Redis (which
 * runs without eviction) with them. The index lists each spool with its size, scored by when it
 * expires; spools already gone (taken, or deleted with their generation) are left out of the sum
 * and the index as they are met, so the sum costs one look per spool that is held.
 *
 * KEYS[1] the spool key, KEYS[2] the spool index
 * ARGV[1] the bytes, ARGV[2] their lifetime (s), ARGV[3] the budget (bytes)
 * Returns 1 when spooled, 0 when the budget has no room for them (nothing is written).
 */
export const SPOOL_LUA = compose(
  NOW_MS,
  SPOOL_ENTRIES,
  `
local now = nowMs()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local used = 0
local own = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key, size = spoolEntry(member)
  if key == KEYS[1] then
    -- the same generation's spool: replaced if these bytes are kept, else it stays as it is
    own[#own + 1] = member
  elseif redis.call('EXISTS', key) == 0 then
    -- one gone no longer counts
    redis.call('ZREM', KEYS[2], member)
  else
    used = used + tonumber(size)
  end
end
local size = string.len(ARGV[1])
if used + size > tonumber(ARGV[3]) then return 0 end
if #own > 0 then redis.call('ZREM', KEYS[2], unpack(own)) end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[2], now + ttl * 1000, KEYS[1] .. '|' .. size)
redis.call('PEXPIRE', KEYS[2], ttl * 1000)
return 1
`,
);

/**
 * Drops from the spool index the entries of spools gone (taken, deleted with their generation, or
 * expired): the index lasts no longer than the spools it lists. KEYS[1] the spool index.
 * Returns how many entries went.
 */
export const SPOOL_PRUNE_LUA = compose(
  NOW_MS,
  SPOOL_ENTRIES,
  `
local gone = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs())
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = spoolEntry(member)
  if redis.call('EXISTS', key) == 0 then gone = gone + redis.call('ZREM', KEYS[1], member) end
end
return gone
`,
);
