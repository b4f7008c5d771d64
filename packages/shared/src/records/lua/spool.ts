import { compose, NOW_MS } from './pieces';

/**
 * The spools the index lists that are still held: entries past their expiry, or whose spool is
 * gone (taken, or deleted with its generation), are dropped as they are met. Returns the bytes of
 * the spools held other than `self` (a generation's own, which its next bytes replace), and the
 * entries of `self` ('' = none).
 */
const HELD_SPOOLS = `
local function heldSpools(index, now, self)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local used, own = 0, {}
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local key, size = string.match(member, '^(.*)|(%d+)$')
    if key == self then
      own[#own + 1] = member
    elseif redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', index, member)
    else
      used = used + tonumber(size)
    end
  end
  return used, own
end
`;

/**
 * Spools a generation's paid-for bytes that could not be stored, unless every worker's spooled
 * bytes together would pass the budget: a store that is down for long must not fill Redis (which
 * runs without eviction) with them. The index lists each spool with its size, scored by when it
 * expires (HELD_SPOOLS), so the sum costs one look per spool that is held. The same generation's
 * earlier spool is replaced if these bytes are kept, else it stays as it is, counted.
 *
 * KEYS[1] the spool key, KEYS[2] the spool index
 * ARGV[1] the bytes, ARGV[2] their lifetime (s), ARGV[3] the budget (bytes)
 * Returns 1 when spooled, 0 when the budget has no room for them (nothing is written).
 */
export const SPOOL_LUA = compose(
  NOW_MS,
  HELD_SPOOLS,
  `
local now = nowMs()
local ttl = tonumber(ARGV[2])
local used, own = heldSpools(KEYS[2], now, KEYS[1])
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
 * Drops from the spool index the entries of spools gone or expired (HELD_SPOOLS): the index lasts
 * no longer than the spools it lists. KEYS[1] the spool index.
 */
export const SPOOL_PRUNE_LUA = compose(NOW_MS, HELD_SPOOLS, `heldSpools(KEYS[1], nowMs(), '')`);
