import { WEBHOOK_OUTBOX_MAX_LEN } from './outbox';

/**
 * Lua fragment of the record transition, run after a status change: when the generation is a
 * batch item, the batch's counts move with it (one down, one up) in the same step, live
 * listeners hear of it, an item that ends is appended to the batch's finished-items stream
 * (where an events listener that reconnects picks up what it missed), and the change that makes
 * the last item terminal completes the batch: its record, item list and finished-items stream
 * get the retention, it is scheduled for the retention sweep, and a
 * `batch.completed` event (the batch as `GET /v1/batches/:id` returns it) goes to the webhook
 * outbox when the batch's webhook wants it.
 *
 * Expects in scope: KEYS[1] the record, its `batchId` (or nil), `cur` and `status` (before and after), `now` (ms),
 * `isTerminal`, `isoTime`; `slots` names the KEYS slots of the batch hash, its items list, the
 * batch expiry set, its finished-items stream and the outbox stream, and the ARGV slots of the batch channel and the
 * retention (s). A record passed in the batch slots (no batch) is never touched.
 */
export const batchCountsLua = (slots: { batch: string; items: string; expiry: string; finished: string; outbox: string; channel: string; retention: string }): string => `
if status ~= cur and batchId and ${slots.batch} ~= KEYS[1] and redis.call('HGET', ${slots.batch}, 'id') == batchId then
  redis.call('HINCRBY', ${slots.batch}, cur, -1)
  redis.call('HINCRBY', ${slots.batch}, status, 1)
  local index = tonumber(redis.call('HGET', KEYS[1], 'batchIndex') or '-1')
  if ${slots.channel} ~= '' then
    redis.call('PUBLISH', ${slots.channel}, cjson.encode({ type = 'item', id = id, index = index, status = status, from = cur }))
  end
  if isTerminal(status) then
    local flat = redis.call('HGETALL', ${slots.batch})
    local b = {}
    for i = 1, #flat, 2 do b[flat[i]] = flat[i + 1] end
    -- an item ends once: the stream holds at most one entry per item, like the items list. While
    -- the batch is still being written it may expire: the stream then expires with it (the
    -- confirmation makes both keep)
    redis.call('XADD', ${slots.finished}, '*', 'index', index, 'id', id, 'status', status)
    if b.confirmed ~= '1' then
      local ttl = redis.call('PTTL', ${slots.batch})
      if ttl > 0 then redis.call('PEXPIRE', ${slots.finished}, ttl) end
    end
    -- a released item that ends leaves the feeder's window (one beyond the count is counted when the count gets there)
    if b.releasedDone and index >= 0 and index < tonumber(b.countedTo or b.released or '0') then
      redis.call('HINCRBY', ${slots.batch}, 'releasedDone', 1)
    end
    local total = tonumber(b.total or '0')
    local done = tonumber(b.completed or '0') + tonumber(b.failed or '0') + tonumber(b.cancelled or '0')
    if b.status ~= 'completed' and b.confirmed == '1' and done >= total then
      local retention = tonumber(${slots.retention})
      b.completedAt = isoTime(now)
      redis.call('HSET', ${slots.batch}, 'status', 'completed', 'completedAt', b.completedAt)
      redis.call('EXPIRE', ${slots.batch}, retention)
      redis.call('EXPIRE', ${slots.items}, retention)
      redis.call('EXPIRE', ${slots.finished}, retention)
      redis.call('ZADD', ${slots.expiry}, now + retention * 1000, batchId .. '|' .. b.tenant)
      local data = {
        id = b.id, object = 'batch', status = 'completed', total = total,
        counts = { queued = tonumber(b.queued), active = tonumber(b.active), completed = tonumber(b.completed), failed = tonumber(b.failed), cancelled = tonumber(b.cancelled) },
        progress = 100,
        createdAt = b.createdAt, completedAt = b.completedAt, cancelledAt = b.cancelledAt,
      }
      -- the metadata as kept (JSON text), spliced in: decoding and encoding it again would turn []
      -- into {} and cut numbers to 14 digits, and it must come back exactly as the GET gives it
      local body = '{"metadata":' .. (b.metadata or 'null') .. ',' .. string.sub(cjson.encode(data), 2)
      if ${slots.channel} ~= '' then
        redis.call('PUBLISH', ${slots.channel}, '{"type":"batch.completed","batch":' .. body .. '}')
      end
      if b.webhook then
        local events = cjson.decode(b.webhook).events
        local wanted = type(events) ~= 'table'
        if not wanted then
          for _, e in ipairs(events) do
            if e == 'batch.completed' then wanted = true end
          end
        end
        if wanted then
          redis.call('XADD', ${slots.outbox}, 'MAXLEN', '~', ${WEBHOOK_OUTBOX_MAX_LEN}, '*',
            'batch', batchId, 'tenant', b.tenant, 'event', 'batch.completed', 'at', tostring(now), 'webhook', b.webhook, 'data', body)
        end
      end
    end
  end
end
`;
