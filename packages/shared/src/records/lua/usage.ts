/**
 * Per-tenant usage counters, kept in one hash per tenant (`keys.usage`) with fields
 * `<YYYY-MM-DD>:<metric>` (UTC day of Redis's clock). Metrics: `generations:<status>` for
 * each terminal status, `upstreamCalls`, `bytesStored`. The maintenance sweep trims days
 * past the usage retention; the hash itself expires once a tenant has been idle this long.
 */
export const USAGE_KEY_IDLE_SECONDS = 400 * 86400;

/** Most days of usage kept (the retention setting's upper bound; the idle expiry is above it). */
export const MAX_USAGE_RETENTION_DAYS = 366;

export const USAGE_METRICS = ['upstreamCalls', 'bytesStored'] as const;

/** Lua piece (needs NOW_MS and ISO_TIME in scope): `countUsage(key, metric, by)`. */
export const COUNT_USAGE = `
local function countUsage(key, metric, by)
  redis.call('HINCRBY', key, string.sub(isoTime(nowMs()), 1, 10) .. ':' .. metric, by)
  redis.call('EXPIRE', key, ${USAGE_KEY_IDLE_SECONDS})
end
`;

/**
 * Lua piece of the record transition (needs COUNT_USAGE, KEYS[1] the record): counts a
 * generation reaching a terminal `status` and, for a completed one, the bytes it stored
 * (original plus thumbnails, from the record's `result`).
 */
export const countTerminalUsageLua = (usageKey: string): string => `
countUsage(${usageKey}, 'generations:' .. status, 1)
if status == 'completed' then
  local raw = redis.call('HGET', KEYS[1], 'result')
  if raw then
    local ok, result = pcall(cjson.decode, raw)
    if ok and type(result) == 'table' then
      local bytes = 0
      if type(result.image) == 'table' then bytes = bytes + (tonumber(result.image.bytes) or 0) end
      if type(result.thumbnails) == 'table' then
        for _, th in ipairs(result.thumbnails) do bytes = bytes + (tonumber(th.bytes) or 0) end
      end
      if bytes > 0 then countUsage(${usageKey}, 'bytesStored', bytes) end
    end
  end
end
`;
