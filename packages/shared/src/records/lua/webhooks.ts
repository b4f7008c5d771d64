import { RECOVERABLE_STATES } from '../../catalog';
import { compose, NOW_MS } from './pieces';

/** Entries kept in a tenant's index of ended deliveries; the oldest go first. */
export const ENDED_DELIVERIES_KEPT = 200_000;

/**
 * Lua of webhook deliveries, as functions, so that a script for one delivery and a script for
 * many (one call per batch of deliveries) run the same rules.
 *
 * The delivery log is one hash per generation (or batch):
 *   d:<deliveryId>  the delivery (JSON)        b:<deliveryId>  its frozen body bytes
 *   a:<n>           the n-th attempt (JSON)    seq             attempts written so far
 *   s:<deliveryId>  the attempt under way: '<run>|<started ms>|<slot member>', until it is recorded
 * Every write keeps the log as long as its subject (KEEP_LOG).
 */

/**
 * A log lives as long as its subject (the generation's or batch's hash, its owner). While the
 * owner has no expiry of its own (a generation under way, an item its running batch holds, a
 * running batch), neither has the log: the retention sweep removes it with its owner, however
 * long that is kept. Otherwise it expires with the retention, from its last write.
 */
const KEEP_LOG = `
local function keepLog(log, owner, ttl)
  if redis.call('PTTL', owner) == -1 then
    redis.call('PERSIST', log)
  else
    redis.call('EXPIRE', log, tonumber(ttl))
  end
end
`;

/** Creates a delivery unless it exists (its frozen body then stays as it was). Returns 1 if new. */
const CREATE_DELIVERY = `
local function createDelivery(log, owner, id, delivery, body, ttl)
  local created = redis.call('HSETNX', log, 'd:' .. id, delivery)
  if created == 1 then redis.call('HSET', log, 'b:' .. id, body) end
  keepLog(log, owner, ttl)
  return created
end
`;

/**
 * The tenant's index of deliveries that ended failed or exhausted (for a recovery): scored by when
 * they last ended, older than the retention trimmed (once per key in a call), at most
 * ENDED_KEPT kept, the key expiring with the retention.
 */
const NOTE_ENDED = `
local trimmed = {}
local function noteEnded(index, member, ttl, now)
  redis.call('ZADD', index, now, member)
  if not trimmed[index] then
    trimmed[index] = true
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (now - tonumber(ttl) * 1000))
    local over = redis.call('ZCARD', index) - ${ENDED_DELIVERIES_KEPT}
    if over > 0 then redis.call('ZREMRANGEBYRANK', index, 0, over - 1) end
    redis.call('EXPIRE', index, tonumber(ttl))
  end
end
`;

/**
 * Writes attempt row `a` as the log's next, with its delivery `d` as it now is. Only the newest
 * `kept` rows stay, and each delivery's latest row however old (`d.lastSeq`), so no delivery
 * drops out of the listing: the log holds at most `kept` rows, plus one for each delivery.
 * `seq` is the log's row count as the caller read it in this call (false: none yet), saving a
 * read; left out (nil), it is read here.
 */
const APPEND_ATTEMPT = `
local function appendAttempt(log, id, a, d, kept, seq)
  if seq == nil then seq = redis.call('HGET', log, 'seq') end
  seq = (tonumber(seq) or 0) + 1
  local previous = tonumber(d.lastSeq)
  d.lastSeq = seq
  redis.call('HSET', log, 'seq', seq, 'a:' .. seq, cjson.encode(a), 'd:' .. id, cjson.encode(d))
  local old = seq - tonumber(kept)
  if old < 1 then return end
  -- this delivery's latest row until now, kept past the newest while it was: no longer
  if previous and previous <= old then redis.call('HDEL', log, 'a:' .. previous) end
  local row = redis.call('HGET', log, 'a:' .. old)
  if not row then return end
  local ownerRaw = redis.call('HGET', log, 'd:' .. cjson.decode(row).id)
  if ownerRaw and tonumber(cjson.decode(ownerRaw).lastSeq) == old then return end
  redis.call('HDEL', log, 'a:' .. old)
end
`;

/** The error of an attempt found under way with no outcome recorded when the next one starts. */
export const UNFINISHED_ATTEMPT_ERROR = 'no outcome recorded: cut short on our side (the worker making it stopped, or could not save its answer); the endpoint may have received it';

/** The error of an attempt of an earlier run found under way when a redelivery's first attempt starts, until its answer (if one comes) replaces it. */
export const OVERTAKEN_ATTEMPT_ERROR = 'no outcome recorded: under way when a redelivery started, and not answered since; the endpoint may have received it';

/**
 * Marks of attempts under way: 's:<id>' = '<run>|<started ms>|<slot member>' from when an
 * attempt takes its slot until it is recorded.
 *
 * markStarted: an attempt of the delivery's current run starts. Returns 'ok', or, marking
 * nothing, 'missing' (the delivery is gone) or 'stale' (it has ended, or moved on to another run,
 * since the caller read it: nothing is to be sent; without `check`, said only when another mark
 * is there, for a caller that sends whatever the answer: a dispatcher's first attempts, of
 * deliveries it has just made). Another attempt of the same run found marked
 * still was cut short (its worker died mid-request, or could not record the answer): it is logged
 * first, as an attempt without outcome that another follows, since its request may have reached
 * the endpoint. That row counts in the delivery's attempts (its number in the log) but not in the
 * run's, which the schedule goes by: what our side lost does not use a step of it. A mark of an
 * earlier run is of an attempt a redelivery overtook (still under way, or cut short): it is
 * logged then too, as failed without outcome, so the log has it in its place, before the new
 * run's attempts; 'x:<id>:<slot member>' = '<row seq>' lets its answer, should it still come,
 * replace that row (recordAttempt) rather than add one. A mark of the
 * same slot member is this attempt's own (the call made again, say after a reconnect): it stays.
 *
 * clearMark: the attempt holding slot `member` is no longer under way ('' = whichever is): only
 * its own mark goes, so a late answer of another attempt (another run's, say) leaves the mark of
 * the one under way now.
 */
const START_MARKS = `
local function markOwner(mark)
  return string.match(mark, '^%d+|%d+|(.*)$')
end
-- \`mark\` is the delivery's mark as the caller read it in this call (false: none), else it is read here
local function clearMark(log, id, member, mark)
  local field = 's:' .. id
  if mark == nil then mark = redis.call('HGET', log, field) end
  if mark and (member == '' or markOwner(mark) == member) then redis.call('HDEL', log, field) end
end
local function pendingIn(d, run)
  return tonumber(run) == tonumber(d.run) and d.state == 'pending'
end
local function markStarted(log, id, run, member, kept, now, check)
  local field = 's:' .. id
  local found = redis.call('HMGET', log, 'd:' .. id, field)
  local raw, old = found[1], found[2]
  if not raw then return 'missing' end
  local d
  if check then
    d = cjson.decode(raw)
    if not pendingIn(d, run) then return 'stale' end
  end
  if old then
    d = d or cjson.decode(raw)
    if not pendingIn(d, run) then return 'stale' end
    local oldRun, at = string.match(old, '^(%d+)|(%d+)|')
    local oldMember = markOwner(old)
    if oldRun and oldMember ~= member then
      d.attempts = (tonumber(d.attempts) or 0) + 1
      local row = { id = d.id, event = d.event, webhookId = d.webhookId, attempt = d.attempts, at = tonumber(at), durationMs = 0 }
      if tonumber(oldRun) == tonumber(d.run) then
        -- the run's count starts here if it has not yet (as recordAttempt does), without this row
        if tonumber(d.runAttemptsOf) ~= tonumber(d.run) then
          d.runAttempts = 0
          d.runAttemptsOf = tonumber(d.run)
        end
        row.state = 'pending'
        row.error = '${UNFINISHED_ATTEMPT_ERROR}'
      else
        row.state = 'failed'
        row.error = '${OVERTAKEN_ATTEMPT_ERROR}'
      end
      appendAttempt(log, id, row, d, kept)
      if row.state == 'failed' then redis.call('HSET', log, 'x:' .. id .. ':' .. oldMember, d.lastSeq) end
    end
  end
  redis.call('HSET', log, field, run .. '|' .. now .. '|' .. member)
  return 'ok'
end
`;

/**
 * Records one attempt: `status`, `err` and `retryInMs` are '' when there is none; `member` is the
 * slot the attempt held, which names that attempt alone ('' for a record made without an
 * attempt): recording it again changes nothing and returns 'again'. Times come from Redis. A
 * delivery that ends failed or exhausted is noted in its tenant's `ended` index.
 * Returns 'ok', 'again', 'missing', or 'stale' (a newer run took over: the attempt is logged all
 * the same, as what its endpoint answered, without changing the delivery; 'again-stale' when
 * that is recorded again).
 */
const RECORD_ATTEMPT = `
local UNDELIVERED = {}
for _, s in ipairs({ ${RECOVERABLE_STATES.map((s) => `'${s}'`).join(', ')} }) do UNDELIVERED[s] = true end
local function recordAttempt(log, owner, ended, subject, id, run, state, status, err, durationMs, retryInMs, ttl, kept, now, member)
  local found = redis.call('HMGET', log, 'd:' .. id, 's:' .. id, 'seq')
  local raw, seq = found[1], found[3]
  if not raw then return 'missing' end
  -- this attempt is no longer under way (a record made without one, '', ends whatever was)
  clearMark(log, id, member, found[2])
  local d = cjson.decode(raw)
  -- recorded already: the same call made again (its reply lost, the client sending it again on
  -- reconnecting); a slot member names one attempt
  if member ~= '' and d.recordedBy == member then return 'again' end
  if member ~= '' and d.supersededBy == member then return 'again-stale' end
  if tonumber(d.run) ~= tonumber(run) then
    -- a redelivery started another run while this attempt was under way: the endpoint got it, so
    -- the log says what came of it, and the delivery carries on with that run, unchanged
    if member == '' then return 'stale' end
    d.supersededBy = member
    local outcome = state == 'delivered' and 'delivered' or 'failed'
    -- logged already, in its place, when the new run's first attempt started (START_MARKS): its row takes the answer
    local note = 'x:' .. id .. ':' .. member
    local noted = redis.call('HGET', log, note)
    local row = noted and redis.call('HGET', log, 'a:' .. noted)
    if noted then redis.call('HDEL', log, note) end
    local a
    if row then
      a = cjson.decode(row)
      a.error = nil
    else
      d.attempts = (tonumber(d.attempts) or 0) + 1
      a = { id = d.id, event = d.event, webhookId = d.webhookId, attempt = d.attempts, at = now - tonumber(durationMs) }
    end
    a.durationMs = tonumber(durationMs)
    a.state = outcome
    if status ~= '' then a.status = tonumber(status) end
    if err ~= '' then a.error = err end
    if row then
      redis.call('HSET', log, 'a:' .. noted, cjson.encode(a), 'd:' .. id, cjson.encode(d))
    else
      appendAttempt(log, id, a, d, kept, seq)
    end
    keepLog(log, owner, ttl)
    return 'stale'
  end
  -- ended in this run already (say, by a worker that gave up on it while a late answer came)
  if d.state ~= 'pending' then return 'stale' end
  d.attempts = (tonumber(d.attempts) or 0) + 1
  -- counted per run, stamped with the run they count: a count from another run (carried over by
  -- a redelivery made by an older release) starts again
  if tonumber(d.runAttemptsOf) ~= tonumber(d.run) then d.runAttempts = 0 end
  d.runAttempts = (tonumber(d.runAttempts) or 0) + 1
  d.runAttemptsOf = tonumber(d.run)
  d.recordedBy = member ~= '' and member or nil
  d.state = state
  local a = { id = d.id, event = d.event, webhookId = d.webhookId, attempt = d.attempts, at = now - tonumber(durationMs),
    durationMs = tonumber(durationMs), state = state }
  if status ~= '' then a.status = tonumber(status) end
  if err ~= '' then a.error = err end
  if retryInMs ~= '' then
    a.nextAttemptAt = now + tonumber(retryInMs)
    d.nextAttemptAt = a.nextAttemptAt
  else
    d.nextAttemptAt = nil
  end
  local undelivered = UNDELIVERED[state] == true
  -- what a delivery that did not arrive last got, for the tenant's listing of them
  if undelivered then
    d.lastStatus = a.status
    d.lastError = a.error
  else
    d.lastStatus = nil
    d.lastError = nil
  end
  appendAttempt(log, id, a, d, kept, seq)
  keepLog(log, owner, ttl)
  if undelivered then noteEnded(ended, subject .. '|' .. id, ttl, now) end
  return 'ok'
end
`;

/**
 * What one script call has learnt of each host's keys, so a call that settles and starts many
 * attempts to one host asks Redis once: whether its circuit is open (kept up to date when this
 * call opens it), that expired leases were swept and the in-flight set's expiry set, that no
 * delivery is parked, that the failure count is clear. Every step's outcome is the same as with
 * no memory; only repeated reads and writes of the same state are left out.
 */
const HOST_STATE = `
local circuitTtl, swept, expiring, noneParked, noFailures = {}, {}, {}, {}, {}
local function circuitOpenMs(circuit)
  if circuitTtl[circuit] == nil then circuitTtl[circuit] = redis.call('PTTL', circuit) end
  return circuitTtl[circuit]
end
`;

/**
 * Takes a slot for one delivery to a host, unless the host's circuit is open or every slot is
 * taken. Slots are leases in a sorted set scored by when they end (Redis time), so a worker that
 * dies mid-request frees its slot when the lease runs out. A delivery that finds every slot
 * taken is parked (oldest first, as `jobId`) to be woken when one frees.
 * Returns { 'ok' | 'busy' | 'open', ms until worth trying again }.
 */
const HOST_ACQUIRE = `
local function hostAcquire(inFlight, circuit, parked, member, leaseMs, max, jobId, now)
  local open = circuitOpenMs(circuit)
  if open > 0 then return { 'open', open } end
  if not swept[inFlight] then
    redis.call('ZREMRANGEBYSCORE', inFlight, '-inf', now)
    swept[inFlight] = true
  end
  if redis.call('ZCARD', inFlight) >= tonumber(max) and not redis.call('ZSCORE', inFlight, member) then
    local first = redis.call('ZRANGE', inFlight, 0, 0, 'WITHSCORES')
    redis.call('ZADD', parked, 'NX', now, jobId)
    redis.call('PEXPIRE', parked, tonumber(leaseMs) * 2)
    noneParked[parked] = nil
    return { 'busy', tonumber(first[2]) - now }
  end
  if not noneParked[parked] then redis.call('ZREM', parked, jobId) end
  redis.call('ZADD', inFlight, now + tonumber(leaseMs), member)
  if not expiring[inFlight] then
    redis.call('PEXPIRE', inFlight, tonumber(leaseMs))
    expiring[inFlight] = true
  end
  return { 'ok', 0 }
end
`;

/**
 * Gives a host slot back, hands it to the oldest parked delivery, and updates the host's health
 * ('up' | 'trouble' | 'unknown'). Consecutive failures open the circuit for a while; once it
 * closes the count stays one short of the threshold, so a single failed probe opens it again
 * while a success clears it.
 * Returns { 1 if this opened the circuit else 0, job id to wake or '' }.
 */
const HOST_RELEASE = `
local function hostRelease(inFlight, failures, circuit, parked, member, health, threshold, openMs)
  redis.call('ZREM', inFlight, member)
  local wake = ''
  if not noneParked[parked] and circuitOpenMs(circuit) <= 0 then
    local first = redis.call('ZPOPMIN', parked)
    if first[1] then wake = first[1] else noneParked[parked] = true end
  end
  local opened = 0
  if health == 'up' then
    if not noFailures[failures] then
      redis.call('DEL', failures)
      noFailures[failures] = true
    end
  elseif health == 'trouble' then
    threshold = tonumber(threshold)
    openMs = tonumber(openMs)
    noFailures[failures] = nil
    local count = redis.call('INCR', failures)
    redis.call('PEXPIRE', failures, openMs * 4 + 60000)
    if count >= threshold then
      redis.call('SET', circuit, '1', 'PX', openMs)
      redis.call('SET', failures, tostring(threshold - 1), 'PX', openMs * 4 + 60000)
      circuitTtl[circuit] = openMs
      opened = 1
    end
  end
  return { opened, wake }
end
`;

/** KEYS: per delivery its log and the log's owner (KEEP_LOG); ARGV: ttl, then id, delivery JSON, body per delivery. Returns 1 (new) or 0 for each. */
export const CREATE_DELIVERIES_LUA = compose(
  KEEP_LOG,
  CREATE_DELIVERY,
  `
local out = {}
for i = 1, #KEYS / 2 do
  local a = 2 + (i - 1) * 3
  out[i] = createDelivery(KEYS[2 * i - 1], KEYS[2 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[1])
end
return out
`,
);

/** KEYS: log, its owner (KEEP_LOG), the tenant's ended index; ARGV: subject, id, run, state, status, error, durationMs, retryInMs, ttl, kept. Clears any attempt's mark. */
export const RECORD_ATTEMPT_LUA = compose(
  NOW_MS,
  KEEP_LOG,
  NOTE_ENDED,
  APPEND_ATTEMPT,
  START_MARKS,
  RECORD_ATTEMPT,
  `return recordAttempt(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], nowMs(), '')`,
);

/** KEYS: log; ARGV: delivery id, run, slot member, kept. Marks the attempt started (START_MARKS): 'ok' | 'missing' | 'stale'. */
export const MARK_STARTED_LUA = compose(NOW_MS, APPEND_ATTEMPT, START_MARKS, `return markStarted(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], nowMs(), true)`);

/** KEYS: log; ARGV: delivery id, slot member. Clears that attempt's mark (clearMark): it ended without sending anything. */
export const CLEAR_MARK_LUA = compose(START_MARKS, `clearMark(KEYS[1], ARGV[1], ARGV[2])`);

/** KEYS: in-flight set, circuit, parked set; ARGV: member, lease ms, max in flight, job id. Returns the slot's kind, ms to wait, and Redis's time (ms). */
export const HOST_ACQUIRE_LUA = compose(
  NOW_MS,
  HOST_STATE,
  HOST_ACQUIRE,
  `
local now = nowMs()
local r = hostAcquire(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], now)
-- Redis's time with it: what the caller compares a due time with, at no extra round trip
r[3] = now
return r
`,
);

/** KEYS: in-flight set, failure count, circuit, parked set; ARGV: member, health, threshold, open ms. */
export const HOST_RELEASE_LUA = compose(HOST_STATE, HOST_RELEASE, `return hostRelease(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])`);

/** ARGV fields of one attempt that ends, in SETTLE_AND_ACQUIRE_LUA. */
const SETTLE_ARGS_PER_ATTEMPT = 13;
/** ARGV fields of one attempt that starts (host, member, job id, log, run). */
const ACQUIRE_ARGS_PER_ATTEMPT = 5;
/** KEYS of one host (in-flight set, failure count, circuit, parked set). */
const KEYS_PER_HOST = 4;

/**
 * Attempts that end and attempts that start, in one call: the ones that end first, so a slot
 * given back is there for one that starts.
 *
 * Each attempt that ends, in one step: its attempt is recorded, its host slot given back (with
 * the host's health) and, for a first attempt made from an outbox entry, the entry acknowledged
 * and deleted unless another attempt must follow (the caller hands that one to a job first); an
 * entry is thus never settled without its attempt recorded. Each attempt that starts takes a
 * slot of its host (HOST_ACQUIRE), in order, and, given its log, is marked started there once
 * it has one (START_MARKS; the job id is then the delivery's id). Each host's keys, each
 * tenant's index of ended deliveries and each log of an attempt that starts are passed once,
 * however many attempts name them (by number, from 1).
 *
 * KEYS[1] outbox stream, then 4 per host (in-flight set, failure count, circuit, parked set),
 * then the log of each attempt that ends, then the owner of each of those logs (KEEP_LOG), then
 * each tenant's ended index (named only by attempts
 * that end failed or exhausted; 0 for the others), then the logs of attempts that start.
 * ARGV: group, ttl, kept, circuit threshold, circuit open ms, lease ms, max in flight, number of
 * attempts that end, number of hosts, number of tenants; then per attempt that ends: host,
 * tenant, subject, id, run, state, status, error, durationMs, retryInMs, member, health, entry id
 * ('' = none); then per attempt that starts: host, member, job id, log (0 = not marked), run.
 * Returns, flat: per attempt that ends recorded ('ok' | 'missing' | 'stale'), opened (0/1), job
 * to wake (or ''), entry settled (0/1); then per attempt that starts its slot kind and ms.
 */
export const SETTLE_AND_ACQUIRE_LUA = compose(
  NOW_MS,
  KEEP_LOG,
  NOTE_ENDED,
  APPEND_ATTEMPT,
  START_MARKS,
  RECORD_ATTEMPT,
  HOST_STATE,
  HOST_RELEASE,
  HOST_ACQUIRE,
  `
-- one clock reading for the call: its steps run back to back
local now = nowMs()
local ending = tonumber(ARGV[8])
local logAt = 1 + tonumber(ARGV[9]) * ${KEYS_PER_HOST}
local ownerAt = logAt + ending
local endedAt = ownerAt + ending
local startLogAt = endedAt + tonumber(ARGV[10])
local function hostKeys(host)
  local k = 1 + (tonumber(host) - 1) * ${KEYS_PER_HOST}
  return KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
end
local out, acks = {}, {}
for i = 1, ending do
  local a = 10 + (i - 1) * ${SETTLE_ARGS_PER_ATTEMPT}
  local inFlight, failures, circuit, parked = hostKeys(ARGV[a + 1])
  local state = ARGV[a + 6]
  -- tenant 0: an ending that is not noted, and no key for it
  local tenant = tonumber(ARGV[a + 2])
  local recorded = recordAttempt(KEYS[logAt + i], KEYS[ownerAt + i], tenant > 0 and KEYS[endedAt + tenant] or '', ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], state, ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10], ARGV[2], ARGV[3], now, ARGV[a + 11])
  -- the same ending again: its slot was given back, and its host's health counted, the first time
  local r = { 0, '' }
  if recorded == 'again' then
    recorded = 'ok'
  elseif recorded == 'again-stale' then
    recorded = 'stale'
  else
    r = hostRelease(inFlight, failures, circuit, parked, ARGV[a + 11], ARGV[a + 12], ARGV[4], ARGV[5])
  end
  local entry = ARGV[a + 13]
  local settled = 0
  if entry ~= '' and (recorded ~= 'ok' or state ~= 'pending') then
    acks[#acks + 1] = entry
    settled = 1
  end
  out[#out + 1] = recorded
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = settled
end
if #acks > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acks))
  redis.call('XDEL', KEYS[1], unpack(acks))
end
local firstArg = 10 + ending * ${SETTLE_ARGS_PER_ATTEMPT}
for i = 1, (#ARGV - firstArg) / ${ACQUIRE_ARGS_PER_ATTEMPT} do
  local a = firstArg + (i - 1) * ${ACQUIRE_ARGS_PER_ATTEMPT}
  local inFlight, _, circuit, parked = hostKeys(ARGV[a + 1])
  local r = hostAcquire(inFlight, circuit, parked, ARGV[a + 2], ARGV[6], ARGV[7], ARGV[a + 3], now)
  local log = tonumber(ARGV[a + 4])
  if r[1] == 'ok' and log > 0 then markStarted(KEYS[startLogAt + log], ARGV[a + 3], ARGV[a + 5], ARGV[a + 2], ARGV[3], now, false) end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
end
return out
`,
);

/**
 * KEYS[1] log, KEYS[2] its owner (KEEP_LOG); ARGV: id, ttl, optionally the run and the states the caller saw it in ('' = any),
 * and the call's own token. Starts a new run of the delivery; returns its number, -1 if unknown,
 * or -2 if it is no longer in that run or one of those states (another redelivery, or an attempt,
 * came first). The same call made again (ioredis resends a command whose reply a reconnect lost)
 * returns the run it started rather than start another, or refuse its own.
 */
export const REDELIVER_LUA = compose(
  NOW_MS,
  KEEP_LOG,
  `
local raw = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if not raw then return -1 end
local d = cjson.decode(raw)
local call = ARGV[5] or ''
if call ~= '' and d.redeliveredBy == call then return d.run end
if (ARGV[3] or '') ~= '' and tostring(tonumber(d.run) or 0) ~= ARGV[3] then return -2 end
if (ARGV[4] or '') ~= '' and not string.find(',' .. ARGV[4] .. ',', ',' .. tostring(d.state) .. ',', 1, true) then return -2 end
d.run = (tonumber(d.run) or 0) + 1
d.redeliveredBy = call ~= '' and call or nil
d.redeliveredAt = nowMs()
d.runAttempts = 0
d.state = 'pending'
d.nextAttemptAt = nil
d.lastStatus = nil
d.lastError = nil
redis.call('HSET', KEYS[1], 'd:' .. ARGV[1], cjson.encode(d))
keepLog(KEYS[1], KEYS[2], ARGV[2])
return d.run
`,
);
