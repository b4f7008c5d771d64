import type { Redis } from 'ioredis';

/** Index entries one page may look at before it answers with what it has found. */
export const MAX_SCANNED_PER_PAGE = 1000;
/** Entries read per round once a round has come back short (entries whose records are gone). */
const REFILL = 100;

/**
 * A page of a newest-first lexical index of ids (`cursor`: the last entry of the previous page),
 * read with `read` (null for an entry to leave out: its record is gone, or filtered away).
 * Entries whose records expired before the retention sweep removed them are skipped, but at most
 * MAX_SCANNED_PER_PAGE entries are looked at per page: past that the page is answered short,
 * with a cursor after the entries looked at, so a page never costs more than that whatever the
 * index holds.
 */
export async function pageFromIndex<T extends { id: string }>(
  redis: Redis,
  key: string,
  opts: { limit: number; cursor?: string | undefined },
  read: (ids: string[]) => Promise<(T | null)[]>,
): Promise<{ records: T[]; nextCursor: string | null }> {
  // one record past the page tells whether another page exists
  const wanted = opts.limit + 1;
  const records: T[] = [];
  let cursor = opts.cursor;
  let scanned = 0;
  while (records.length < wanted) {
    if (scanned >= MAX_SCANNED_PER_PAGE) return { records: records.slice(0, opts.limit), nextCursor: cursor ?? null };
    const short = wanted - records.length;
    const count = Math.min(MAX_SCANNED_PER_PAGE - scanned, scanned === 0 ? short : Math.max(short, REFILL));
    const ids = await redis.zrevrangebylex(key, cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, count);
    if (ids.length === 0) break;
    scanned += ids.length;
    for (const record of await read(ids)) if (record) records.push(record);
    cursor = ids[ids.length - 1];
  }
  const page = records.slice(0, opts.limit);
  return { records: page, nextCursor: records.length > opts.limit ? (page[page.length - 1]?.id ?? null) : null };
}
