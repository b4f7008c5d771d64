/**
 * Hash fields the fragment keeps in the record for its own bookkeeping (first `started` sent,
 * time of the last `progress` sent). They are not part of the generation: decoders skip them.
 */
export const WEBHOOK_RECORD_FIELDS = ['webhookStarted', 'webhookProgressAt'] as const;
const [STARTED_FIELD, PROGRESS_AT_FIELD] = WEBHOOK_RECORD_FIELDS;

/** `generation.progress` goes out at most this often per generation. */
export const WEBHOOK_PROGRESS_INTERVAL_MS = 500;

/**
 * Outbox cap (approximate trimming): far above any backlog a running dispatcher leaves, it only
 * bounds the stream when no worker has run for a very long time.
 */
export const WEBHOOK_OUTBOX_MAX_LEN = 1_000_000;

/**
 * Lua fragment of the record transition, run where the change's event is published, so that
 * the record change and its webhook event are one atomic write: nothing can change the record
 * without the event being recorded, and no event exists for a change that did not happen.
 *
 * When the record has a `webhook` whose `events` (or, without them, completed and failed) include
 * the event, appends to the outbox stream: `gen`, `tenant`, `event`, `at` (ms, Redis time) and
 * `record` (the whole hash after the change, so the payload is a snapshot of that moment).
 * `generation.started` goes out once per generation (the first attempt, not each retry);
 * `generation.progress` at most once per WEBHOOK_PROGRESS_INTERVAL_MS.
 *
 * Expects in scope: KEYS[1] the record hash, ARGV[2] the event type, `now` the transition's
 * Redis time (ms; the event's `at` is the change's own time); `outboxKey` names the Lua
 * expression of the outbox stream's key (the KEYS slot the transition passes it in).
 */
export const webhookOutboxLua = (outboxKey: string): string => `
local webhook = redis.call('HGET', KEYS[1], 'webhook')
if webhook then
  local event = ARGV[2]
  local events = cjson.decode(webhook).events
  local wanted = false
  if type(events) == 'table' then
    for _, e in ipairs(events) do
      if e == event then wanted = true end
    end
  else
    wanted = event == 'generation.completed' or event == 'generation.failed'
  end
  local at = now
  if wanted and event == 'generation.started' then
    wanted = redis.call('HSETNX', KEYS[1], '${STARTED_FIELD}', '1') == 1
  elseif wanted and event == 'generation.progress' then
    local last = tonumber(redis.call('HGET', KEYS[1], '${PROGRESS_AT_FIELD}') or '0')
    if at - last < ${WEBHOOK_PROGRESS_INTERVAL_MS} then
      wanted = false
    else
      redis.call('HSET', KEYS[1], '${PROGRESS_AT_FIELD}', tostring(at))
    end
  end
  if wanted then
    local flat = redis.call('HGETALL', KEYS[1])
    local snapshot = {}
    for i = 1, #flat, 2 do snapshot[flat[i]] = flat[i + 1] end
    redis.call('XADD', ${outboxKey}, 'MAXLEN', '~', ${WEBHOOK_OUTBOX_MAX_LEN}, '*',
      'gen', snapshot.id, 'tenant', snapshot.tenant, 'event', event, 'at', tostring(at), 'record', cjson.encode(snapshot))
  end
end
`;

/**
 * KEYS[1] the outbox stream; ARGV: group, consumer, then entry ids the consumer is still working
 * on. Resets the idle time of each that is still pending on that consumer (none is taken from
 * another), so that no claim of entries left idle too long takes them while they are worked on.
 * Returns how many were kept.
 */
export const OUTBOX_KEEP_HELD_LUA = `
local kept = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
`;
