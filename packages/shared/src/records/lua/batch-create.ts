import { CLAIM_IDEMPOTENCY, compose, ID_TIME, ISO_TIME, NEW_FIELDS, NOW_MS } from './pieces';

/**
 * Starts a batch: writes its record (provisional: it expires unless confirmed in time, so a
 * batch whose creator died part-way leaves nothing for good) and, with an `Idempotency-Key`,
 * claims that key in the same step. The batch goes on the list of batches being written, where
 * the feeder looks for one gone unconfirmed (its writer died) to remove what it wrote (a list of
 * its own: a feeder of an earlier version, during an upgrade, would feed what is on the feeding
 * list). A key already held answers with what it holds, unless it
 * holds this very call's claim (the call sent again after a reconnect lost its reply: the claim
 * names this batch's new id), which answers as the first run did.
 *
 * KEYS[1] batch, KEYS[2] idempotency key (the batch key again when there is none), KEYS[3] the
 * list of batches being written
 * ARGV[1] provisional seconds, ARGV[2] idempotency value ('' = none), ARGV[3] the claim's seconds,
 * ARGV[4] the batch's entry (`tenant|id`), ARGV[5..] field, value, ...
 * Returns {'created', createdAt} | {'held', value}.
 */
export const BATCH_BEGIN_LUA = compose(
  NOW_MS,
  ISO_TIME,
  ID_TIME,
  NEW_FIELDS,
  CLAIM_IDEMPOTENCY,
  `
local held = claimIdempotency(KEYS[2], ARGV[2], ARGV[3])
if held then
  local begun = held == ARGV[2] and redis.call('HGET', KEYS[1], 'createdAt')
  if begun then return {'created', begun} end
  return {'held', held}
end
-- the entry is \`tenant|id\` (a tenant's name holds no '|')
local createdAt = isoTime(createdMsOf(string.match(ARGV[4], '|(.*)$') or '', nowMs()))
writeNewFields(KEYS[1], ARGV, 5, createdAt)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('ZADD', KEYS[3], 'NX', 0, ARGV[4])
return {'created', createdAt}
`,
);

/**
 * Writes one chunk of a batch's items: each an ordinary queued generation record, indexed for
 * its tenant, its id appended to the batch's item list (its position is its index) and counted
 * as queued in the batch. The batch gets the provisional expiry again (the writer's lease,
 * renewed by every chunk), and so does its finished-items stream if an item ended already; its
 * list lives longer, so that what a dead writer wrote can be found and removed once the batch is
 * gone. One script per chunk, many items each: accepting 50,000 items costs
 * a hundred round trips, not 50,000.
 *
 * The submitting request's quota reservation shrinks by the chunk in the same step, as its items
 * now count in the tenant's queued index (see QuotaShrink).
 *
 * KEYS[1] batch, KEYS[2] its items list, KEYS[3] tenant index (all), KEYS[4] tenant index
 * (queued), KEYS[5] tenants, KEYS[6] its finished-items stream, KEYS[7] the tenant's quota
 * reservations (the batch key again when there is none), KEYS[8..] the item records
 * ARGV[1] tenant, ARGV[2] provisional seconds of the batch, ARGV[3] of its list, ARGV[4] JSON array
 * of the field, value pairs every item shares, ARGV[5] the reservation's entry ('' = none),
 * ARGV[6] what replaces it ('' = nothing), then per item: id, fileToken, request (JSON), metadata
 * (JSON), index (consecutive: a chunk follows the one before it).
 * Returns the number written, -1 when the batch is gone, or -2 when the list does not end where
 * the chunk starts. A chunk the list already holds (the call sent again after a reconnect lost its
 * reply) writes nothing and answers as the first run did: appended twice, its items would be
 * counted twice and the chunk after it never fed.
 */
export const BATCH_ADD_ITEMS_LUA = compose(
  NOW_MS,
  ISO_TIME,
  ID_TIME,
  `
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return -1 end
local ITEMS = 7
local first, count = tonumber(ARGV[ITEMS + 4]), (#ARGV - ITEMS + 1) / 5
local held = redis.call('LLEN', KEYS[2])
if held >= first + count and redis.call('LINDEX', KEYS[2], first) == ARGV[ITEMS] then return count end
if held ~= first then return -2 end
local common = cjson.decode(ARGV[4])
local now = nowMs()
local n = 0
local ids = {}
for i = ITEMS, #ARGV, 5 do
  n = n + 1
  local key = KEYS[7 + n]
  local id = ARGV[i]
  redis.call('HSET', key, unpack(common))
  redis.call('HSET', key, 'id', id, 'fileToken', ARGV[i + 1], 'request', ARGV[i + 2], 'metadata', ARGV[i + 3], 'batchIndex', ARGV[i + 4], 'createdAt', isoTime(createdMsOf(id, now)))
  redis.call('ZADD', KEYS[3], 0, id)
  redis.call('ZADD', KEYS[4], 0, id)
  ids[n] = id
end
redis.call('RPUSH', KEYS[2], unpack(ids))
-- the writer's lease: a batch whose writer stops writing goes soon after
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 'queued', n)
redis.call('SADD', KEYS[5], ARGV[1])
if ARGV[5] ~= '' then
  -- the reservation keeps its expiry, and so does the key (the rest is added before the entry
  -- goes, so the key never empties on the way); a reservation already expired is not made again
  local expires = redis.call('ZSCORE', KEYS[7], ARGV[5])
  if expires then
    if ARGV[6] ~= '' then redis.call('ZADD', KEYS[7], expires, ARGV[6]) end
    redis.call('ZREM', KEYS[7], ARGV[5])
  end
end
return n
`,
);

/**
 * Every item of the batch is written: it keeps (until it completes), shows in the tenant's
 * list, is handed to the feeder, and its idempotency key gets its full life.
 *
 * KEYS[1] batch, KEYS[2] items list, KEYS[3] tenant's batches, KEYS[4] batches being fed,
 * KEYS[5] idempotency key (the batch key again when there is none), KEYS[6] its finished-items
 * stream (which an item that ended during the upload started, with the batch's expiry),
 * KEYS[7] batches being written (it leaves)
 * ARGV[1] batch id, ARGV[2] tenant, ARGV[3] idempotency value ('' = none), ARGV[4] its lifetime (s),
 * ARGV[5] the batch's entry in the lists (`tenant|id`, see batchListEntry)
 * Returns 1, or 0 when the batch is gone.
 */
export const BATCH_CONFIRM_LUA = `
if redis.call('HEXISTS', KEYS[1], 'id') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'confirmed', '1')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[6])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[5])
redis.call('ZREM', KEYS[7], ARGV[5])
if ARGV[3] ~= '' and redis.call('GET', KEYS[5]) == ARGV[3] then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[4])) end
return 1
`;

/**
 * Frees an idempotency key held for a batch that is gone (its retention ended before the key's,
 * or its writer abandoned it), if the key still holds that batch's claim; a batch still there
 * keeps its key. KEYS[1] batch, KEYS[2] idempotency key; ARGV[1] the claim's value.
 * Returns 1 when the batch is gone (the key freed if it held the claim), 0 when it is there.
 */
export const BATCH_FREE_CLAIM_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`;

/**
 * Marks a batch cancelled, in one step, and puts it on the feeding list (or keeps it there): the
 * feeder releases nothing more of it, and finishes the cancel of its items should the request
 * cancelling them stop part-way (see BatchFeeder). A batch that is gone (its retention ended
 * since it was read) is left gone, not written back without an expiry.
 *
 * KEYS[1] batch, KEYS[2] the feeding list; ARGV[1] the time (ISO; the batch's createdAt if that is
 * later: see ID_TIME), ARGV[2] its feeding entry
 * Returns 1 the first time, 0 when already cancelled, -1 when the batch is gone.
 */
export const BATCH_CANCEL_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return -1
end
redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[2])
local createdAt = redis.call('HGET', KEYS[1], 'createdAt') or ''
return redis.call('HSETNX', KEYS[1], 'cancelledAt', createdAt > ARGV[1] and createdAt or ARGV[1])
`;

/**
 * Notes how far the cancel of a cancelled batch's items has gone (`cancelledTo`, the items before
 * that index are done; it never moves back) and when (`cancelNotedAt`, Redis's ms: a cancel noted
 * lately is still at work) and, once they all are, that it is done: the batch then leaves the
 * feeding list. A batch that is gone is left gone (and off the list).
 *
 * KEYS[1] batch, KEYS[2] the feeding list; ARGV[1] the index reached, ARGV[2] its feeding entry,
 * ARGV[3] '1' when every item is done, ARGV[4] '1' to note the time (the request cancelling; the
 * feeder finishing a cancel that stopped does not). Returns 1, or 0 when the batch is gone.
 */
export const BATCH_CANCEL_PROGRESS_LUA = compose(
  NOW_MS,
  `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'cancelledTo') or '0') then
  redis.call('HSET', KEYS[1], 'cancelledTo', ARGV[1])
end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'cancelNotedAt', tostring(nowMs())) end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'cancelsDone', '1')
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1
`,
);

/**
 * Removes the records a batch gone unconfirmed wrote (its writer died): of `ids`, those still
 * queued in that batch (a list that outlived a completed batch names finished records, which the
 * retention sweep owns), with their index entries, in one step each; the ids are taken off the
 * head of its item list. Returns how many records went.
 *
 * KEYS[1] its item list, KEYS[2] tenant index (all), KEYS[3] tenant index (queued), KEYS[4..]
 * the records; ARGV[1] batch id, ARGV[2..] the ids, in the list's order from its head.
 */
export const BATCH_REMOVE_UNACCEPTED_LUA = `
local removed = 0
for i = 2, #ARGV do
  local record = KEYS[2 + i]
  local found = redis.call('HMGET', record, 'status', 'batchId')
  if found[1] == 'queued' and found[2] == ARGV[1] then
    redis.call('DEL', record)
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZREM', KEYS[3], ARGV[i])
    removed = removed + 1
  end
end
redis.call('LTRIM', KEYS[1], #ARGV - 1, -1)
return removed
`;
