import { compose, IS_TERMINAL, ISO_TIME, NOW_MS } from './pieces';
import { COUNT_USAGE } from './usage';

/**
 * `claimUpstream(record, usage, owner, leaseMs)` claims the lease on securing a generation's
 * original (calling the upstream, downloading its URL, storing the bytes). Refused while another
 * runner's lease is live — a job whose lock was lost and re-queued must neither pay twice nor
 * fetch a one-time URL twice — and unneeded once the original is stored. The same owner claiming
 * again renews its lease. Lease times are Redis's, so runners on hosts with different clocks
 * agree. A claim with neither a URL nor bytes checkpointed leads to an upstream call: it is
 * counted in the tenant's usage. Needs IS_TERMINAL, NOW_MS and COUNT_USAGE.
 *
 * Returns { outcome, a, b }: 'ok' (a: the checkpointed upstream URL or '', b: the spool key or '') |
 * 'busy' (a: ms until the other runner's lease ends) | 'checkpointed' | 'terminal' | 'missing'.
 */
export const CLAIM_UPSTREAM_FN = `
local function claimUpstream(key, usage, owner, leaseMs)
  local f = redis.call('HMGET', key, 'status', 'original', 'upstreamUrl', 'spoolKey', 'upstreamLease')
  if not f[1] then return {'missing', '', ''} end
  if isTerminal(f[1]) then return {'terminal', '', ''} end
  if f[2] then return {'checkpointed', '', ''} end
  local now = nowMs()
  if f[5] then
    local sep = string.find(f[5], '|', 1, true)
    local holder = string.sub(f[5], 1, sep - 1)
    local expires = tonumber(string.sub(f[5], sep + 1))
    if holder ~= owner and expires > now then return {'busy', tostring(expires - now), ''} end
  end
  redis.call('HSET', key, 'upstreamLease', owner .. '|' .. (now + tonumber(leaseMs)))
  if not f[3] and not f[4] then countUsage(usage, 'upstreamCalls', 1) end
  return {'ok', f[3] or '', f[4] or ''}
end
`;

/** KEYS[1] record, KEYS[2] the tenant's usage counters; ARGV[1] owner, ARGV[2] lease length (ms). */
export const CLAIM_UPSTREAM_LUA = compose(IS_TERMINAL, NOW_MS, ISO_TIME, COUNT_USAGE, CLAIM_UPSTREAM_FN, 'return claimUpstream(KEYS[1], KEYS[2], ARGV[1], ARGV[2])');
