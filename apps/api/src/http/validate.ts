import type { Request, RequestHandler } from 'express';
import { z } from 'zod';
import { INPUT_PARSE, toFieldErrors } from '@imagegen/shared';
import { HttpProblem, invalid } from './problem';

/** Validates a JSON body against a schema; every bad field is named, nothing else happens. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (body === undefined) throw invalid('A JSON body is required', [{ path: '(body)', message: 'is required' }]);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('The body must be a JSON object', [{ path: '(body)', message: 'must be a JSON object' }]);
  }
  const result = schema.safeParse(body, INPUT_PARSE);
  if (!result.success) {
    const errors = toFieldErrors(result.error);
    throw invalid(`The body has ${errors.length} invalid field${errors.length === 1 ? '' : 's'}`, errors);
  }
  return result.data;
}

const NO_FIELDS = z.strictObject({});

/** A POST that takes no options: no body, or an empty JSON object (room for options later); anything else is 400. */
export function refuseBodyFields(body: unknown): void {
  if (body !== undefined) parseBody(NO_FIELDS, body);
}

/** A listing that takes no query parameters refuses any given, as the listings that take some refuse the ones they do not know (`?limt=5` is no page size). */
export function refuseQueryParameters(query: Record<string, unknown>): void {
  parseQuery(NO_FIELDS, query);
}

/**
 * A whole number in a query string, from `min` to `max`, `fallback` when not given: digits only,
 * so `0x10`, `1e1` or ` 7` (which Number() would read as 16, 10 and 7) are refused, not guessed at.
 */
export function queryWholeNumber(min: number, max: number, fallback: number) {
  const message = `must be a whole number from ${min} to ${max}`;
  return z.preprocess(
    (v) => (typeof v === 'string' && /^[0-9]{1,15}$/.test(v) ? Number(v) : v),
    z.number({ error: message }).int({ error: message }).min(min, { error: message }).max(max, { error: message }).default(fallback),
  );
}

/**
 * Validates a query string against a schema. A parameter given empty (`?cursor=`, as URL
 * builders write an unset one) counts as not given.
 */
export function parseQuery<T extends z.ZodType>(schema: T, query: Record<string, unknown>): z.output<T> {
  // every parameter is a single value: one given twice would otherwise read as "must be a number"
  const repeated = Object.keys(query).filter((k) => Array.isArray(query[k]));
  if (repeated.length) throw invalid('Invalid query parameters', repeated.map((path) => ({ path, message: 'must be given once' })));
  const given = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== ''));
  const result = schema.safeParse(given, INPUT_PARSE);
  if (!result.success) throw invalid('Invalid query parameters', toFieldErrors(result.error));
  return result.data;
}

/** Whether the request carries a body at all (a declared type without one is no body). */
export function hasBody(req: Request): boolean {
  return req.get('transfer-encoding') !== undefined || Number(req.get('content-length') ?? 0) > 0;
}

/** A body must be declared as one of `types`; anything else is 415 before it is read. */
export function requireContentType(...types: string[]): RequestHandler {
  return (req, _res, next) => {
    if (!hasBody(req)) return next();
    if (!req.is(types)) {
      return next(new HttpProblem(415, 'Unsupported media type', `Send the body as ${types.join(' or ')}`));
    }
    next();
  };
}

/** `Prefer: wait=N` (RFC 7240, where the value may also be a quoted string), capped. */
export function preferWaitSeconds(header: string | undefined, max: number): number | undefined {
  const m = header && /(?:^|[,;\s])wait\s*=\s*(?:(\d+)|"(\d+)")(?=$|[,;\s])/i.exec(header);
  const value = m?.[1] ?? m?.[2];
  if (value === undefined) return undefined;
  return Math.min(Number(value), max);
}

/**
 * The request's Idempotency-Key. Two or more are refused: Node joins them into one value
 * (`a, b`), which would be taken for a key of its own and make another generation or batch.
 */
export function idempotencyKeyOf(req: Request): string | undefined {
  if (headerCount(req, 'idempotency-key') > 1) throw invalid('Send one Idempotency-Key header, not several', [{ path: '(header) Idempotency-Key', message: 'was sent more than once' }]);
  return req.get('idempotency-key');
}

/** How many times the request carries header `name` (lower case): Node keeps or joins repeats, unseen. */
export function headerCount(req: Request, name: string): number {
  let seen = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] as string).toLowerCase() === name) seen++;
  return seen;
}
