import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { freePort, sleep } from './net';

/**
 * A real S3-protocol server (s3rver, from npm) in a process of its own on a real socket, with
 * its objects under a temporary directory. It can be stopped mid-load and started again on the
 * same port with the same objects, as an object store that goes away and comes back.
 */

/** The credentials s3rver accepts; the SDK's usual chain finds them in the environment. */
export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

export interface S3Server {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly bucket: string;
  /** The bucket's own URL (path style), for S3_PUBLIC_BASE_URL. */
  readonly bucketUrl: string;
  readonly running: boolean;
  /** The server's output so far (its request log, with `log: true`). */
  output(): string;
  /** What a process needs for STORAGE=s3 against this server: settings and credentials. */
  env(): Record<string, string>;
  /** Every key in the bucket, sorted. */
  keys(prefix?: string): Promise<string[]>;
  /** Empties the bucket. */
  clear(): Promise<void>;
  /** Stops the server at once (SIGKILL): connections drop, new ones are refused. */
  stop(): Promise<void>;
  /** Freezes it (SIGSTOP): connections are still accepted by the kernel, and nothing answers; `resume` thaws it. */
  pause(): void;
  resume(): void;
  /** Starts it again on the same port with the same objects; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it and removes its objects. */
  destroy(): Promise<void>;
}

const S3RVER_BIN = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * The SDK reads credentials from the environment (its usual chain); an API or worker built in
 * this process (startStack) finds them there, exactly as a deployed one would.
 */
export function useS3Credentials(): void {
  Object.assign(process.env, S3_CREDENTIALS);
}

export async function startS3Server(opts: { bucket?: string; /** log every request (s3rver's own lines, in output()) */ log?: boolean } = {}): Promise<S3Server> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-s3-'));
  const bucket = opts.bucket ?? 'imagegen-test';
  const endpoint = `http://127.0.0.1:${port}`;
  const admin = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: S3_CREDENTIALS.AWS_ACCESS_KEY_ID, secretAccessKey: S3_CREDENTIALS.AWS_SECRET_ACCESS_KEY } });
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const start = async () => {
    if (child) throw new Error('s3rver is already running');
    // s3rver seals ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider
    const proc = spawn(process.execPath, ['--openssl-legacy-provider', S3RVER_BIN, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--configure-bucket', bucket, ...(opts.log ? [] : ['--silent']), '--no-vhost-buckets'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    child = proc;
    let gone = false;
    exited = new Promise((resolve) =>
      proc.once('exit', () => {
        gone = true;
        live.delete(proc);
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (gone) throw new Error(`s3rver exited while starting:\n${output.slice(-3000)}`);
      const up = await fetch(`${endpoint}/${bucket}?list-type=2&max-keys=1`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.status < 500,
        () => false,
      );
      if (up) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`s3rver not ready on ${port}:\n${output.slice(-3000)}`);
      }
      await sleep(50);
    }
  };

  const stop = async () => {
    child?.kill('SIGKILL');
    await exited;
  };

  const keys = async (prefix?: string) => {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  };

  await start();
  return {
    port,
    endpoint,
    bucket,
    bucketUrl: `${endpoint}/${bucket}`,
    get running() {
      return child !== undefined;
    },
    output: () => output,
    env: () => ({ STORAGE: 's3', S3_BUCKET: bucket, S3_ENDPOINT: endpoint, S3_FORCE_PATH_STYLE: 'true', S3_REGION: 'us-east-1', ...S3_CREDENTIALS }),
    keys,
    async clear() {
      const all = await keys();
      for (let i = 0; i < all.length; i += 1000) {
        await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
      }
    },
    stop,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async destroy() {
      child?.kill('SIGCONT');
      await stop();
      admin.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
