import { newFileToken, newId, type GenerationRecord, type StoredResult } from '@imagegen/shared';

/** A generation record as the API would write it, written straight to the store by tests; `over` sets the rest. */
export function generationRecord(over: Partial<GenerationRecord> & Pick<GenerationRecord, 'webhook'>): GenerationRecord {
  return {
    id: newId('gen'),
    tenant: 'default',
    status: 'active',
    stage: 'storing',
    progress: 85,
    request: { topic: 'test record', style: 'PHOTOGRAPHIC', size: 'SQUARE' },
    metadata: null,
    priority: 'normal',
    attempts: 1,
    createdAt: new Date().toISOString(),
    fileToken: newFileToken(),
    ...over,
  };
}

/** The smallest result a record can complete with (no files behind it). */
export const TINY_RESULT: StoredResult = { image: { key: 'x/original.png', width: 1, height: 1, format: 'png', bytes: 1 }, thumbnails: [] };
