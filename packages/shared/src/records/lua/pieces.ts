import { ID_TIME_CHARS } from '../../ids';
import { STATUSES, TERMINAL_STATUSES } from '../../schemas/generation';

/**
 * Lua shared by the record scripts. Each script is its pieces joined with its own body
 * (`compose`), so a rule such as "which statuses are terminal" is written once, from the
 * same constants the TypeScript uses.
 */

const luaStrings = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

export const IS_TERMINAL = `
local TERMINAL = {}
for _, s in ipairs({ ${luaStrings(TERMINAL_STATUSES)} }) do TERMINAL[s] = true end
local function isTerminal(status) return status ~= nil and TERMINAL[status] == true end
`;

/** Redis's clock, never a host's: every process on every host agrees on it. */
export const NOW_MS = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** ISO 8601 (UTC, milliseconds) of an epoch time in ms, by the civil-from-days algorithm. */
export const ISO_TIME = `
local function isoTime(ms)
  local secs = math.floor(ms / 1000)
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', year, month, day,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, ms % 1000)
end
`;

/**
 * Value that a script replaces with the time of the change as ISO 8601 (`completedAt: NOW`):
 * Redis's, never before the record's createdAt (see ID_TIME); a new record's createdAt is the
 * time in its id.
 */
export const NOW = '$now';

/** How far an id's time may be from Redis's for a record to be dated by it. */
const ID_TIME_TRUSTED_MS = 60_000;

/**
 * A new record's creation time (ms): the time in its id (see newId), so that listings, ordered by
 * id, are ordered by `createdAt` too, even for records submitted at once through several API
 * processes (each id's time is its process's reading of Redis's clock, made before the record's
 * script runs). Redis's time `now` instead when the id has no time, or one far from Redis's (made
 * by a host whose clock is not yet matched to it).
 */
export const ID_TIME = `
local function createdMsOf(id, now)
  local sep = string.find(id, '_', 1, true)
  local t = sep and tonumber(string.sub(id, sep + 1, sep + ${ID_TIME_CHARS}), 36)
  if not t or math.abs(t - now) > ${ID_TIME_TRUSTED_MS} then return now end
  return t
end
-- the time a change to record \`id\` is stamped with: Redis's, or the record's creation time when
-- that is later (its id's, a few ms ahead of Redis's), so no stamp or event is before createdAt
local function recordNowMs(id)
  local clock = nowMs()
  return math.max(clock, createdMsOf(id, clock))
end
`;

/**
 * Maps a status to the KEYS slot of its tenant index, the indexes being passed from
 * `firstKey` on in `STATUSES` order (see `keys.tenantStatusIndexes`).
 */
export function statusIndexSlots(firstKey: number): string {
  return `local STATUS_INDEX = { ${STATUSES.map((s, i) => `['${s}'] = ${firstKey + i}`).join(', ')} }\n`;
}

/**
 * Sets hash fields from the field, value pairs of `list` (ARGV) starting at `from`, with the
 * conventions of `encodeFields`: `${NOW}` is `now` (ms) as ISO 8601. Plain values (each field
 * appears once in a patch) are written by one HSET at the end.
 */
export const APPLY_FIELDS = `
local function applyFields(key, list, from, now)
  local status
  local plain = {}
  for i = from, #list, 2 do
    local f, v = list[i], list[i + 1]
    if v == '${NOW}' then v = isoTime(now) end
    if string.sub(f, 1, 1) == '?' then
      redis.call('HSETNX', key, string.sub(f, 2), v)
    elseif f == 'progress' then
      local p = redis.call('HGET', key, 'progress')
      if not p or tonumber(v) > tonumber(p) then redis.call('HSET', key, 'progress', v) end
    elseif v == '' then
      redis.call('HDEL', key, f)
    else
      plain[#plain + 1] = f
      plain[#plain + 1] = v
    end
    if f == 'status' then status = v end
  end
  if #plain > 0 then redis.call('HSET', key, unpack(plain)) end
  return status
end
`;

/**
 * Writes a new hash from the field, value pairs of `list` starting at `from`: every value as it
 * is (a new hash has nothing to keep, delete or compare, so none of APPLY_FIELDS' rules apply),
 * `${NOW}` as `createdAt` (ISO 8601), empty values left out; one HSET.
 */
export const NEW_FIELDS = `
local function writeNewFields(key, list, from, createdAt)
  local plain = {}
  for i = from, #list, 2 do
    local v = list[i + 1]
    if v == '${NOW}' then v = createdAt end
    if v ~= '' then
      plain[#plain + 1] = list[i]
      plain[#plain + 1] = v
    end
  end
  redis.call('HSET', key, unpack(plain))
end
`;

/**
 * Claims an idempotency key for `value` (nothing to do when `value` is ''); answers what the
 * key already holds instead, when it does, so the caller writes nothing.
 */
export const CLAIM_IDEMPOTENCY = `
local function claimIdempotency(key, value, ttl)
  if value == '' then return nil end
  local held = redis.call('GET', key)
  if held then return held end
  redis.call('SET', key, value, 'EX', tonumber(ttl))
  return nil
end
`;

export function compose(...parts: string[]): string {
  return parts.join('\n');
}
