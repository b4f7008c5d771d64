import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The SSRF guard of webhook targets: only globally routable unicast addresses may be called.
 * ipaddr.js names every special range (loopback, private, link-local and the metadata address
 * 169.254.169.254, CGNAT, multicast, unspecified, unique-local, documentation, NAT64 and 6to4
 * forms that embed an IPv4 address, ...); everything it does not call `unicast` is refused.
 * IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it carries.
 */
export function addressRange(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (!ipaddr.isValid(bare)) return 'invalid';
  const parsed = ipaddr.process(bare);
  const range = parsed.range();
  // ipaddr.js names ::127.0.0.1 loopback but the same address written ::7f00:1 unicast: the
  // deprecated IPv4-compatible block (::/96) is refused however it is written
  if (range === 'unicast' && parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE)) return 'ipv4Compatible';
  return range;
}

const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

/** Names ipaddr.js gives that read badly in a sentence. */
const RANGE_WORDS: Record<string, string> = {
  carrierGradeNat: 'carrier-grade NAT (CGNAT)',
  linkLocal: 'link-local (or cloud metadata)',
  uniqueLocal: 'unique-local',
  deprecatedSiteLocal: 'site-local',
  ipv4Compatible: 'IPv4-compatible',
  rfc6052: 'NAT64 (RFC 6052)',
  rfc6145: 'IPv4-translated (RFC 6145)',
  amt: 'AMT (automatic multicast tunneling)',
  as112v4: 'AS112',
  as112v6: 'AS112',
  orchid2: 'ORCHIDv2',
  droneRemoteIdProtocolEntityTags: 'drone remote ID (DRIP)',
};

/** "a loopback address", "an IPv4-compatible address", ...: an address's range as words. */
export function rangePhrase(address: string): string {
  const range = addressRange(address);
  const words = RANGE_WORDS[range] ?? range.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  // "an unspecified", "an IPv4-compatible", but "a unique-local"
  return `${/^(?:[aeio]|u(?!ni))/i.test(words) ? 'an' : 'a'} ${words} address`;
}

export function isPublicAddress(address: string): boolean {
  return addressRange(address) === 'unicast';
}

export type LookupAll = (hostname: string) => Promise<string[]>;

const systemLookup: LookupAll = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses.map((a) => a.address)))));

export interface UrlCheckOptions {
  allowPrivate: boolean;
  lookup?: LookupAll;
  /** Longest wait for DNS. */
  timeoutMs?: number;
}

/**
 * Why a webhook URL may not be used, or null when it may. Every address the name resolves to
 * must be public (a name with one private address is refused: any of them may be picked). A
 * name that does not resolve now is taken: DNS may be down or not yet set up for it, and every
 * attempt checks the address it connects to anyway; its attempts fail until the name resolves.
 */
export async function webhookUrlProblem(raw: string, opts: UrlCheckOptions): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http(s) URL';
  // they would be stored and logged with the URL: credentials belong in the signature check
  if (url.username || url.password) return 'must not contain credentials';
  // nothing listens on port 0: a connection there can never succeed
  if (url.port === '0') return 'must name a port from 1 to 65535';
  if (opts.allowPrivate) return null;
  // a name is the same with its final dot (the DNS root) or without, and a resolver may know only
  // the one form: judged without it, `localhost.` is localhost
  const host = (url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname).replace(/\.+$/, '');
  if (isIP(host)) return isPublicAddress(host) ? null : `points to ${rangePhrase(host)}, which is not allowed`;
  // localhost and every name under it are loopback (RFC 6761), whatever a resolver here says of them
  if (host === 'localhost' || host.endsWith('.localhost')) return 'names a loopback host, which is not allowed';
  let addresses: string[];
  try {
    addresses = await withTimeout((opts.lookup ?? systemLookup)(host), opts.timeoutMs ?? 5000);
  } catch {
    return null;
  }
  const blocked = addresses.find((a) => !isPublicAddress(a));
  return blocked ? `resolves to ${rangePhrase(blocked)}, which is not allowed` : null;
}

/** Refused at connect time: the address a name resolved to is not public. */
export class BlockedAddressError extends Error {
  readonly code = 'EBLOCKEDADDRESS';
  constructor(host: string, address: string) {
    super(`${host} resolved to ${rangePhrase(address)} (${address}), which webhooks may not reach`);
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls connect that refuses private addresses. Used for the connection itself,
 * so the address checked is the address connected to: a name that re-resolves to a private
 * address after the submit-time check (DNS rebinding) is still refused.
 */
export function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, options, (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => {
    if (err) return callback(err, address, family);
    const list = typeof address === 'string' ? [address] : address.map((a) => a.address);
    const blocked = list.find((a) => !isPublicAddress(a));
    if (blocked) return callback(new BlockedAddressError(hostname, blocked), address, family);
    callback(null, address, family);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
