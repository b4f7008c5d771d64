import { compose, IS_TERMINAL } from './pieces';

/**
 * Moves a batch's release cursor forward only (a feeder that lost its lock never moves it back)
 * and keeps `releasedDone`, its released items that have ended, exact: the record transition
 * (batch.ts) counts an item that ends below `countedTo`, and this script counts the items from
 * `countedTo` up to `to` that have ended already (cancelled one by one before their turn) or
 * whose record is gone (it can never end), then moves `countedTo` there. A feeder of an earlier
 * version moves the cursor without counting: the next feeder counts what it passed (a catch-up,
 * `to` no further than the cursor). A batch made before it was counted has no `releasedDone`.
 *
 * KEYS[1] batch, KEYS[2..] the records of the items at list positions `from`, `from` + 1, ...;
 * ARGV[1] `to`, ARGV[2] `from`. Returns 1, or 0 when the batch is gone.
 */
export const BATCH_ADVANCE_LUA = compose(
  IS_TERMINAL,
  `
local cur = tonumber(redis.call('HGET', KEYS[1], 'released') or '-1')
if cur < 0 then return 0 end
local to, from = tonumber(ARGV[1]), tonumber(ARGV[2])
if to > cur then redis.call('HSET', KEYS[1], 'released', to) end
if redis.call('HEXISTS', KEYS[1], 'releasedDone') == 0 then return 1 end
local counted = tonumber(redis.call('HGET', KEYS[1], 'countedTo') or tostring(cur))
-- items not given from where the count stands (another feeder moved it meanwhile): a later round counts them
if from > counted then return 1 end
local upTo = math.min(to, from + #KEYS - 1)
if upTo <= counted then return 1 end
local ended = 0
for p = counted, upTo - 1 do
  local status = redis.call('HGET', KEYS[p - from + 2], 'status')
  if not status or isTerminal(status) then ended = ended + 1 end
end
if ended > 0 then redis.call('HINCRBY', KEYS[1], 'releasedDone', ended) end
redis.call('HSET', KEYS[1], 'countedTo', upTo)
return 1
`,
);
