import type { GenerationRequest, Priority, WebhookTarget } from './request';

export const STATUSES = ['queued', 'active', 'completed', 'failed', 'cancelled'] as const;
export type GenerationStatus = (typeof STATUSES)[number];
export const TERMINAL_STATUSES: readonly GenerationStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: GenerationStatus): boolean => TERMINAL_STATUSES.includes(s);

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

/** A stored image file, as kept in the record (storage key, not URL). */
export interface StoredImage {
  key: string;
  width: number;
  height: number;
  format: string;
  bytes: number;
}

export interface StoredThumbnail extends StoredImage {
  size: number;
}

export interface StoredResult {
  image: StoredImage;
  thumbnails: StoredThumbnail[];
  placeholder?: string;
}

export interface GenerationErrorInfo {
  code: string;
  message: string;
  retryable: boolean;
}

/** Everything kept about one generation, in its own Redis hash, apart from the BullMQ job. */
export interface GenerationRecord {
  id: string;
  tenant: string;
  status: GenerationStatus;
  stage: Stage;
  progress: number;
  request: GenerationRequest;
  metadata: Record<string, unknown> | null;
  priority: Priority;
  batchId?: string;
  batchIndex?: number;
  webhook?: WebhookTarget;
  attempts: number;
  createdAt: string;
  startedAt?: string;
  completedAt?: string;
  result?: StoredResult;
  error?: GenerationErrorInfo;
  /** Random path segment of every file URL; never derivable from the id. */
  fileToken: string;
  /** Checkpoint: the upstream's URL for the image, so a retry downloads before paying again. */
  upstreamUrl?: string;
  /** Checkpoint: the original is stored; later stages never call the upstream again. */
  original?: StoredImage;
  /** Checkpoint: paid-for bytes kept in Redis because storing them failed. */
  spoolKey?: string;
  /** `owner|expiresAtMs` while an upstream call is in flight, so no second runner calls too. */
  upstreamLease?: string;
}

export interface PublicImage {
  url: string;
  width: number;
  height: number;
  format: string;
  bytes: number;
}

export interface PublicGeneration {
  id: string;
  object: 'generation';
  status: GenerationStatus;
  progress: number;
  stage: Stage;
  request: GenerationRequest;
  metadata: Record<string, unknown> | null;
  priority: Priority;
  batchId?: string;
  attempts: number;
  createdAt: string;
  startedAt?: string;
  completedAt?: string;
  result?: {
    image: PublicImage;
    thumbnails: Array<PublicImage & { size: number }>;
    placeholder?: string;
  };
  error?: GenerationErrorInfo;
}

/** `publicBaseUrl` comes normalised from config (no trailing slash), with any path prefix kept. */
export function fileUrl(publicBaseUrl: string, key: string): string {
  return `${publicBaseUrl}/files/${key}`;
}

/** The generation as clients see it: internal checkpoints and tokens stay inside. */
export function presentGeneration(record: GenerationRecord, publicBaseUrl: string): PublicGeneration {
  const toPublic = ({ key, ...rest }: StoredImage): PublicImage => ({ url: fileUrl(publicBaseUrl, key), ...rest });
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
