import { compose, IS_TERMINAL } from './pieces';

/**
 * Moves a batch's release cursor forward only (a feeder that lost its lock never moves it back)
 * and counts, in `releasedEnded`, the newly released items that have ended already (cancelled
 * one by one before their turn) or whose record is gone (it can never end): with the items that
 * end once released (counted by the record transition, batch.ts), the feeder knows how many
 * released items are still under way. A batch made before it was counted has no
 * `releasedEnded` and keeps none.
 *
 * KEYS[1] batch, KEYS[2..] the records of the items released now, in order; ARGV[1] the new
 * cursor, ARGV[2] the index of the first of them. Returns 1, or 0 when the batch is gone.
 */
export const BATCH_ADVANCE_LUA = compose(
  IS_TERMINAL,
  `
local cur = tonumber(redis.call('HGET', KEYS[1], 'released') or '-1')
if cur < 0 then return 0 end
local to, from = tonumber(ARGV[1]), tonumber(ARGV[2])
-- the same advance again (a resend after a reconnect), or one behind another: nothing to count
if to <= cur then return 1 end
redis.call('HSET', KEYS[1], 'released', to)
if redis.call('HEXISTS', KEYS[1], 'releasedEnded') == 0 then return 1 end
local ended = 0
for i = 2, #KEYS do
  local index = from + i - 2
  if index >= cur and index < to then
    local status = redis.call('HGET', KEYS[i], 'status')
    if not status or isTerminal(status) then ended = ended + 1 end
  end
end
if ended > 0 then redis.call('HINCRBY', KEYS[1], 'releasedEnded', ended) end
return 1
`,
);
