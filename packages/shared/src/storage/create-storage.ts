import { FsStorage } from './fs-storage';
import { S3Storage } from './s3-storage';
import { fileCacheControl, type Storage } from './storage';

/** The storage settings both apps parse (`storageEnvShape`), with DATA_DIR for `fs`. */
export interface StorageConfig {
  STORAGE: 'fs' | 's3';
  DATA_DIR: string;
  S3_BUCKET?: string | undefined;
  S3_ENDPOINT?: string | undefined;
  S3_REGION: string;
  S3_FORCE_PATH_STYLE: boolean;
  /** How long records and their files are kept: caches keep a file no longer (see fileCacheControl). */
  RECORD_RETENTION_HOURS?: number;
}

/** The backend STORAGE names: files under DATA_DIR, or objects in S3_BUCKET. */
export function createStorage(config: StorageConfig): Storage {
  if (config.STORAGE === 'fs') return new FsStorage(config.DATA_DIR);
  // the config schema refuses STORAGE=s3 without a bucket; this guards other callers
  if (!config.S3_BUCKET) throw new Error('STORAGE=s3 needs S3_BUCKET');
  return new S3Storage({ bucket: config.S3_BUCKET, endpoint: config.S3_ENDPOINT, region: config.S3_REGION, forcePathStyle: config.S3_FORCE_PATH_STYLE, cacheControl: fileCacheControl(config.RECORD_RETENTION_HOURS) });
}
