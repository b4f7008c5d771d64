import { CLAIM_IDEMPOTENCY, compose, ID_TIME, ISO_TIME, NEW_FIELDS, NOW_MS } from './pieces';

/** CREATE_LUA's (and CREATE_GUARD_LUA's) number of KEYS and of ARGV. */
export const CREATE_KEY_COUNT = 6;
export const CREATE_ARG_COUNT = 7;

/**
 * A record already there: ids are new for each create, so this very call ran before (ioredis
 * sends a call again when a reconnect lost its reply). It answers as it did then and writes
 * nothing again: written again, a generation the worker had finished meanwhile went back to
 * queued.
 */
const CREATED_BEFORE = `
local function createdBefore(record)
  local createdAt = redis.call('HGET', record, 'createdAt')
  if createdAt then return {'created', createdAt} end
  return nil
end
`;

/**
 * Creates a record, indexes it and (with an `Idempotency-Key`) claims the key, all in one
 * step: a key maps to exactly one generation whatever the timing. A key already held
 * answers with what it holds instead. A submitting request's quota reservation can end in
 * the same step (the record now counts in the queued index).
 *
 * KEYS[1] record, KEYS[2] tenant index (all), KEYS[3] tenant index (queued), KEYS[4] tenants,
 * KEYS[5] idempotency key (the record key again when there is none), KEYS[6] the tenant's
 * quota reservations (the record key again when there is none)
 * ARGV[1] id, ARGV[2] tenant, ARGV[3] provisional seconds (0 = none),
 * ARGV[4] idempotency value ('' = none), ARGV[5] its lifetime (s), ARGV[6] reservation entry
 * ('' = none), ARGV[7] the record's fields and values, packed (a JSON array, see packFields)
 * Returns {'created', createdAt} | {'held', value already under the key}; the same call made
 * again answers 'created' as the first did (CREATED_BEFORE).
 */
export const CREATE_LUA = compose(
  NOW_MS,
  ISO_TIME,
  ID_TIME,
  NEW_FIELDS,
  CLAIM_IDEMPOTENCY,
  CREATED_BEFORE,
  `
local before = createdBefore(KEYS[1])
if before then return before end
local held = claimIdempotency(KEYS[5], ARGV[4], ARGV[5])
if held then return {'held', held} end
local createdAt = isoTime(createdMsOf(ARGV[1], nowMs()))
writeNewFields(KEYS[1], cjson.decode(ARGV[7]), 1, createdAt)
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[6], ARGV[6]) end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3])) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[2])
return {'created', createdAt}
`,
);

/**
 * Run before a job is added for a new record (see withJobAdds): the same call made again
 * answers as the first did (CREATED_BEFORE), and a held idempotency key answers what it holds,
 * so neither a job nor a record is written (the request's quota reservation still ends: it
 * reserved for a record that will not be). CREATE_LUA's KEYS and ARGV.
 */
export const CREATE_GUARD_LUA = compose(
  CREATED_BEFORE,
  `
local before = createdBefore(KEYS[1])
if before then return before end
if ARGV[4] == '' then return nil end
local held = redis.call('GET', KEYS[5])
if not held then return nil end
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[6], ARGV[6]) end
return {'held', held}
`,
);

/**
 * Undoes a create whose job was never enqueued: no record, and the idempotency key (if it
 * still holds this record) is free again. Only a provisional record can be discarded: a
 * record written with its job never is. A record already gone (removed at the end of its
 * retention while its key lived on) frees its key too.
 *
 * KEYS[1..5] as CREATE_LUA; ARGV[1] id, ARGV[2] idempotency value ('' = none)
 * Returns 1 when discarded (or gone), 0 when the record was not provisional.
 */
export const DISCARD_LUA = `
local ttl = redis.call('PTTL', KEYS[1])
-- -2: the record is gone, only its key is left to free
if ttl ~= -2 then
  if ttl < 0 or redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[5]) == ARGV[2] then redis.call('DEL', KEYS[5]) end
return 1
`;
