import { z } from 'zod';
import { PRIORITIES, storedMetadataSchema, storedRequestSchema, webhookTargetSchema } from './request';

export const STATUSES = ['queued', 'active', 'completed', 'failed', 'cancelled'] as const;
export type GenerationStatus = (typeof STATUSES)[number];
export const TERMINAL_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly GenerationStatus[];
export const isTerminal = (s: GenerationStatus): boolean => (TERMINAL_STATUSES as readonly GenerationStatus[]).includes(s);

export const STAGES = ['queued', 'generating', 'downloading', 'processing', 'storing', 'done'] as const;
export type Stage = (typeof STAGES)[number];

/** Progress reported on entering each stage; it only ever rises. */
export const STAGE_PROGRESS: Record<Stage, number> = {
  queued: 0,
  generating: 10,
  downloading: 45,
  processing: 65,
  storing: 85,
  done: 100,
};

const isoTime = z.iso.datetime();
const imageFields = {
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  format: z.string(),
  bytes: z.number().int().nonnegative(),
};

/** A stored image file, as kept in the record (storage key, not URL). */
export const storedImageSchema = z.object({ key: z.string(), ...imageFields });
export type StoredImage = z.output<typeof storedImageSchema>;

export const storedThumbnailSchema = storedImageSchema.extend({ size: z.number().int().positive() });
export type StoredThumbnail = z.output<typeof storedThumbnailSchema>;

export const storedResultSchema = z.object({
  image: storedImageSchema,
  thumbnails: z.array(storedThumbnailSchema),
  placeholder: z.string().optional(),
});
export type StoredResult = z.output<typeof storedResultSchema>;

export const generationErrorSchema = z.object({ code: z.string(), message: z.string(), retryable: z.boolean() });
export type GenerationErrorInfo = z.output<typeof generationErrorSchema>;

/**
 * Everything kept about one generation, in its own Redis hash apart from the BullMQ job.
 * The one source of the record: its type, its Redis codec (records/codec.ts) and, through
 * `publicGenerationSchema`, what clients see.
 */
export const generationRecordSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  status: z.enum(STATUSES),
  stage: z.enum(STAGES),
  progress: z.number().int().min(0).max(100),
  request: storedRequestSchema,
  metadata: storedMetadataSchema.nullable(),
  priority: z.enum(PRIORITIES),
  batchId: z.string().optional(),
  batchIndex: z.number().int().nonnegative().optional(),
  webhook: webhookTargetSchema.optional(),
  attempts: z.number().int().nonnegative(),
  createdAt: isoTime,
  startedAt: isoTime.optional(),
  completedAt: isoTime.optional(),
  result: storedResultSchema.optional(),
  error: generationErrorSchema.optional(),
  /** Random path segment of every file URL; never derivable from the id. */
  fileToken: z.string(),
  /** Checkpoint: the upstream's URL for the image, so a retry downloads before paying again. */
  upstreamUrl: z.string().optional(),
  /** Checkpoint: the original is stored; later stages never call the upstream again. */
  original: storedImageSchema.optional(),
  /** Checkpoint: paid-for bytes kept in Redis because storing them failed. */
  spoolKey: z.string().optional(),
  /** `owner|expiresAtMs` (Redis time) while an upstream call is in flight, so no second runner calls too. */
  upstreamLease: z.string().optional(),
  /** The channel of the API process whose request waits on this generation: its end is published there too. */
  notify: z.string().optional(),
});
export type GenerationRecord = z.output<typeof generationRecordSchema>;

const publicImageSchema = z.object({ url: z.url(), ...imageFields });

/** The generation as clients see it (GET, lists, events, webhooks): checkpoints and tokens stay inside. */
export const publicGenerationSchema = generationRecordSchema
  .pick({
    id: true,
    status: true,
    progress: true,
    stage: true,
    request: true,
    metadata: true,
    priority: true,
    batchId: true,
    batchIndex: true,
    attempts: true,
    createdAt: true,
    startedAt: true,
    completedAt: true,
    error: true,
  })
  .extend({
    object: z.literal('generation'),
    result: z
      .object({
        image: publicImageSchema,
        thumbnails: z.array(publicImageSchema.extend({ size: z.number().int().positive() })),
        placeholder: z.string().optional().describe('ThumbHash, base64'),
      })
      .optional(),
  });
export type PublicGeneration = z.output<typeof publicGenerationSchema>;
export type PublicImage = z.output<typeof publicImageSchema>;

/** Where file URLs start: `filesBaseUrl` of either app's config (computed once, no trailing slash). */
export interface FileLinks {
  filesBaseUrl: string;
}

/** A stored file's public URL: the API's `/files` route, or the object store's public address. */
export function fileUrl(links: FileLinks, key: string): string {
  return `${links.filesBaseUrl}/${key}`;
}

/** The generation as clients see it: internal checkpoints and tokens stay inside. */
export function presentGeneration(record: GenerationRecord, links: FileLinks): PublicGeneration {
  const toPublic = ({ key, ...rest }: StoredImage): PublicImage => ({ url: fileUrl(links, key), ...rest });
  const out: PublicGeneration = {
    id: record.id,
    object: 'generation',
    status: record.status,
    progress: record.progress,
    stage: record.stage,
    request: record.request,
    metadata: record.metadata,
    priority: record.priority,
    attempts: record.attempts,
    createdAt: record.createdAt,
  };
  if (record.batchId) out.batchId = record.batchId;
  if (record.batchIndex !== undefined) out.batchIndex = record.batchIndex;
  if (record.startedAt) out.startedAt = record.startedAt;
  if (record.completedAt) out.completedAt = record.completedAt;
  if (record.result) {
    const { image, thumbnails, placeholder } = record.result;
    out.result = {
      image: toPublic(image),
      thumbnails: thumbnails.map(({ size, ...img }) => ({ size, ...toPublic(img) })),
      ...(placeholder ? { placeholder } : {}),
    };
  }
  if (record.error) out.error = record.error;
  return out;
}
