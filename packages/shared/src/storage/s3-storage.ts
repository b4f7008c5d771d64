import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import { DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { contentTypeFor, fileCacheControl, isValidStorageKey, isValidStoragePrefix, type ByteRange, type OpenedFile, type Storage, type StoredFileInfo } from './storage';

export interface S3StorageOptions {
  bucket: string;
  /** An S3-compatible endpoint; unset: AWS S3 in `region`. */
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Connections at once for calls answered at once (writes, lookups, listings, deletes, whole reads). */
  maxSockets?: number;
  /** How long a call may wait for the store's answer (a store that accepts connections and hangs), per attempt. */
  answerTimeoutMs?: number;
  /** Cache-Control every object is written with (see fileCacheControl); a year unless said. */
  cacheControl?: string;
}

/** Connections to the store at once for downloads streamed to the API's clients (see `streams`). */
const DOWNLOAD_CONNECTIONS = 1024;
/** The store's answer is waited for this long per attempt, and a call makes at most two. */
const ANSWER_TIMEOUT_MS = 15_000;
const ATTEMPTS = 2;

/** Originals at least this large go up in parts, several at once; smaller files in one PutObject. */
export const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;
const PARTS_AT_ONCE = 4;
/** What S3 takes in one DeleteObjects call, and returns in one ListObjectsV2 page. */
const KEYS_PER_CALL = 1000;
/** How long a bucket seen to exist is taken to (see bucketExists). */
const BUCKET_SEEN_MS = 60_000;

/**
 * Files as objects in one bucket of any S3-compatible store, under the same keys as on disk
 * (`<fileToken>/<name>`). PutObject and multipart uploads both make an object appear whole
 * or not at all, so there is no temporary area to sweep. Credentials come from the SDK's
 * usual chain (environment, shared profile, instance or task role) and are never logged.
 */
export class S3Storage implements Storage {
  readonly bucket: string;
  /** Every call answered at once: writes, lookups, listings, deletes, reads the worker takes whole. */
  private readonly client: S3Client;
  /**
   * Bodies handed on to the API's clients, each held as long as its client reads: on a pool of
   * their own, so slow downloaders (a public URL is enough to open one) never hold the
   * connections every other call needs, and with a bound far past what downloads in earnest use
   * (DOWNLOAD_CONNECTIONS), so that clients that stop reading do not hold other downloads up either:
   * each holds its own connection, as a file on disk holds its handle, until its client has read it
   * or has read nothing for a minute. Past the bound a download waits for one, then answers 503.
   */
  private readonly streams: S3Client;
  private readonly agents: (HttpAgent | HttpsAgent)[] = [];
  private readonly answerTimeoutMs: number;
  private readonly cacheControl: string;
  private bucketSeenAt = -Infinity;

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    this.answerTimeoutMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    this.cacheControl = opts.cacheControl ?? fileCacheControl();
    // a connection idle that long is let go: for calls, the answer's deadline; for bodies being
    // streamed, a minute (a client that stopped reading)
    this.client = this.makeClient(opts, this.answerTimeoutMs, opts.maxSockets ?? 64);
    this.streams = this.makeClient(opts, 60_000, DOWNLOAD_CONNECTIONS);
  }

  private makeClient(opts: S3StorageOptions, idleMs: number, maxSockets: number): S3Client {
    const agentOptions = { keepAlive: true, maxSockets };
    const httpAgent = new HttpAgent(agentOptions);
    const httpsAgent = new HttpsAgent(agentOptions);
    this.agents.push(httpAgent, httpsAgent);
    return new S3Client({
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle,
      // checksums only where S3 demands them: many S3-compatible stores reject the rest
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // a store that is down fails fast (storage_failed, retried from the checkpoint); one that
      // accepts connections and hangs fails within two answer deadlines
      requestHandler: { httpAgent, httpsAgent, connectionTimeout: 5000, socketTimeout: idleMs },
      maxAttempts: ATTEMPTS,
    });
  }

  private checkKey(key: string): string {
    if (!isValidStorageKey(key)) throw new Error(`invalid storage key: ${JSON.stringify(key)}`);
    return key;
  }

  async put(key: string, data: Buffer): Promise<{ bytes: number }> {
    const params = { Bucket: this.bucket, Key: this.checkKey(key), Body: data, ContentType: contentTypeFor(key), CacheControl: this.cacheControl };
    if (data.length < MULTIPART_THRESHOLD) {
      await this.client.send(new PutObjectCommand({ ...params, ContentLength: data.length }));
    } else {
      // the object appears only when the upload completes; a failed one is aborted (parts of a
      // process killed mid-upload are never visible, and a bucket lifecycle rule removes them)
      await new Upload({ client: this.client, params, partSize: PART_SIZE, queueSize: PARTS_AT_ONCE, leavePartsOnError: false }).done();
    }
    return { bytes: data.length };
  }

  async read(key: string): Promise<Buffer> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.checkKey(key) }));
    if (!out.Body) throw new Error(`no body for ${key}`);
    return Buffer.from(await out.Body.transformToByteArray());
  }

  async stat(key: string): Promise<StoredFileInfo | null> {
    if (!isValidStorageKey(key)) return null;
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return infoOf(out.ContentLength ?? 0, out);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.bucketExists();
      return null;
    }
  }

  /**
   * A HEAD's answer has no body, so a missing bucket and a missing object both read NotFound:
   * before a HEAD's NotFound counts as a missing file, the bucket is looked for (at most once a
   * minute while it is there). A missing bucket is a broken setup, never a missing file.
   */
  private async bucketExists(): Promise<void> {
    if (performance.now() - this.bucketSeenAt < BUCKET_SEEN_MS) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (isNotFound(err) || (err instanceof S3ServiceException && err.name === 'NoSuchBucket')) throw new Error(`the bucket ${this.bucket} does not exist`);
      throw err;
    }
    this.bucketSeenAt = performance.now();
  }

  async reachable(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (isNotFound(err) || (err instanceof S3ServiceException && err.name === 'NoSuchBucket')) throw new Error(`the bucket ${this.bucket} does not exist`);
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 403) throw new Error(`access to the bucket ${this.bucket} is refused (check the credentials and their permissions)`);
      throw err;
    }
    this.bucketSeenAt = performance.now();
  }

  createReadStream(key: string): Readable {
    // the interface's synchronous stream, for callers that take no ranges: a pass-through fed by open()
    const out = new PassThrough();
    this.open(key).then(
      (opened) => {
        if (!opened) return out.destroy(Object.assign(new Error(`no such file: ${key}`), { code: 'ENOENT' }));
        // the reader may have gone before the object answered
        if (out.destroyed) return opened.stream.destroy();
        out.once('close', () => opened.stream.destroy());
        opened.stream.once('error', (err) => out.destroy(err));
        opened.stream.pipe(out);
      },
      (err: Error) => out.destroy(err),
    );
    return out;
  }

  async open(key: string, range?: ByteRange): Promise<OpenedFile | null> {
    if (!isValidStorageKey(key)) return null;
    let out;
    try {
      // the answer (its headers) within the deadline; the body then flows as long as its client reads
      const answered = new AbortController();
      const timer = setTimeout(() => answered.abort(new Error(`the object store did not answer within ${this.answerTimeoutMs} ms`)), this.answerTimeoutMs * ATTEMPTS);
      try {
        out = await this.streams.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }), { abortSignal: answered.signal });
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    // in Node the body is the response itself: destroying it closes the connection under it
    const body = out.Body as Readable;
    if (!range) return { stream: body, info: infoOf(out.ContentLength ?? 0, out) };
    // a store may answer a wider range than asked, or the whole object (as HTTP allows): then
    // only the bytes asked for go on, so a response never carries more than it announced
    const got = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.ContentRange ?? '');
    const [from, to, total] = got ? [Number(got[1]), Number(got[2]), Number(got[3])] : [0, (out.ContentLength ?? 0) - 1, out.ContentLength ?? 0];
    const end = Math.min(range.end, total - 1);
    if (from > range.start || to < end) {
      body.destroy();
      throw new Error(`object store answered bytes ${from}-${to} for ${range.start}-${end} of ${key}`);
    }
    const stream = from === range.start && to === end ? body : Readable.from(slice(body, range.start - from, end - range.start + 1), { objectMode: false });
    return { stream, info: infoOf(total, out) };
  }

  /** Every object under `<prefix>/`: listed a page at a time, deleted up to 1,000 per call. */
  removePrefix(prefix: string): Promise<void> {
    return this.removeOthers(prefix, new Set());
  }

  async removeOthers(prefix: string, keep: ReadonlySet<string>): Promise<void> {
    if (!isValidStoragePrefix(prefix)) throw new Error('invalid storage prefix');
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${prefix}/`, MaxKeys: KEYS_PER_CALL, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key && !keep.has(o.Key) ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }));
        const failed = out.Errors ?? [];
        if (failed.length > 0) throw new Error(`could not delete ${failed.length} object(s) under ${prefix}/: ${failed[0]?.Code ?? 'error'}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Connections open to the store (in use and idle): flat over time, whatever clients do. */
  openSockets(): number {
    let n = 0;
    for (const agent of this.agents) {
      for (const list of [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)]) n += list?.length ?? 0;
    }
    return n;
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.streams.destroy();
    for (const agent of this.agents) agent.destroy();
  }
}

function infoOf(bytes: number, out: { ETag?: string | undefined; LastModified?: Date | undefined; ContentType?: string | undefined }): StoredFileInfo {
  return {
    bytes,
    ...(out.LastModified ? { modifiedAt: out.LastModified } : {}),
    ...(out.ETag ? { etag: out.ETag.startsWith('"') ? out.ETag : `"${out.ETag}"` } : {}),
    ...(out.ContentType ? { contentType: out.ContentType } : {}),
  };
}

/** `length` bytes of `source` after its first `skip`; leaving the loop early destroys the source. */
async function* slice(source: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let left = length;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    const part = chunk.subarray(Math.min(skip, chunk.length), Math.min(skip, chunk.length) + left);
    skip = Math.max(0, skip - chunk.length);
    if (part.length > 0) {
      left -= part.length;
      yield part;
    }
    if (left === 0) return;
  }
  throw new Error(`object ended ${left} bytes short of the range`);
}

function isNotFound(err: unknown): boolean {
  // a missing bucket is a broken setup, never a missing file
  return err instanceof S3ServiceException && (err.name === 'NotFound' || err.name === 'NoSuchKey');
}
