import { isIP } from 'node:net';
import { isPublicAddress, rangePhrase } from './ssrf';

/** A webhook URL's parts as deliveries use them. */
export interface WebhookTargetUrl {
  origin: string;
  /** Path and query. */
  path: string;
  /** host:port, which the endpoint's host slots are counted against. */
  host: string;
  /** The hostname, an IPv6 literal without its brackets. */
  hostname: string;
  /** Set when the hostname is a literal address outside the public range: that range, in words. */
  privateLiteral?: string;
}

/** URLs seen lately: a few endpoints take most deliveries, and parsing a URL is not free. */
const seen = new Map<string, WebhookTargetUrl>();

/**
 * The parts of an http(s) URL, parsed once per URL (a bounded memo); throws for anything else
 * (a target was checked in full, DNS included, when it was submitted).
 */
export function webhookTargetUrl(raw: string): WebhookTargetUrl {
  const known = seen.get(raw);
  if (known) return known;
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('webhook target without an http(s) URL');
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const parts: WebhookTargetUrl = { origin: url.origin, path: `${url.pathname}${url.search}`, host: url.host, hostname };
  if (isIP(hostname) && !isPublicAddress(hostname)) parts.privateLiteral = rangePhrase(hostname);
  if (seen.size >= 10_000) seen.clear();
  seen.set(raw, parts);
  return parts;
}
