import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

/** Array elements hashed between two yields to the event loop. */
const ELEMENTS_PER_SLICE = 1000;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { toJSON?: unknown }).toJSON !== 'function';

/**
 * JSON.stringify replacer giving every object its members in sorted order: the order a client
 * happened to write them in is not part of what it asked for. (Integer-like names still come
 * first, as JSON.stringify always puts them; the order stays a function of the names alone.)
 */
function sortMembers(_key: string, value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]]));
}

/** sha256 (hex) of a JSON value's canonical text: bodies that differ only in member order hash alike. */
export function jsonDigestSync(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value, sortMembers) ?? '').digest('hex');
}

/**
 * The same digest, computed a piece at a time for a body of megabytes (a 50,000-item batch):
 * the root object's members and every array's elements are serialised one by one, with the
 * event loop free every thousand elements, so it never stalls other requests the way one
 * JSON.stringify of the whole body does.
 */
export async function jsonDigest(value: unknown): Promise<string> {
  const hash = createHash('sha256');
  let sinceYield = 0;
  const walk = async (v: unknown, inArray: boolean): Promise<void> => {
    if (Array.isArray(v)) {
      hash.update('[');
      for (let i = 0; i < v.length; i++) {
        if (i > 0) hash.update(',');
        if (++sinceYield >= ELEMENTS_PER_SLICE) {
          sinceYield = 0;
          await yieldToLoop();
        }
        await walk(v[i], true);
      }
      hash.update(']');
      return;
    }
    // JSON.stringify writes null for what it cannot serialise inside an array
    const text = JSON.stringify(v, sortMembers) as string | undefined;
    hash.update(text === undefined && inArray ? 'null' : (text ?? ''));
  };
  if (isPlainObject(value)) {
    const root = sortMembers('', value) as Record<string, unknown>;
    hash.update('{');
    let first = true;
    for (const [k, v] of Object.entries(root)) {
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      hash.update(`${first ? '' : ','}${JSON.stringify(k)}:`);
      first = false;
      await walk(v, false);
    }
    hash.update('}');
  } else await walk(value, false);
  return hash.digest('hex');
}
