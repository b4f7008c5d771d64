import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

/** Array elements hashed between two yields to the event loop. */
const ELEMENTS_PER_SLICE = 1000;

/**
 * sha256 (hex) of `JSON.stringify(value)` for a JSON value, computed a piece at a time: the
 * root object's members and every array's elements are serialised one by one, with the event
 * loop free every thousand elements, so a body of megabytes (a 50,000-item batch) never
 * stalls other requests the way one JSON.stringify of it does. Same digest as hashing the
 * whole string.
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
    const text = JSON.stringify(v) as string | undefined;
    hash.update(text === undefined && inArray ? 'null' : (text ?? ''));
  };
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    hash.update('{');
    let first = true;
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      hash.update(`${first ? '' : ','}${JSON.stringify(k)}:`);
      first = false;
      await walk(v, false);
    }
    hash.update('}');
  } else await walk(value, false);
  return hash.digest('hex');
}
