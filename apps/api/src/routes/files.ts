import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type RequestHandler, type Response } from 'express';
import { contentTypeFor, fileCacheControl, isValidStorageKey, type ByteRange, type OpenedFile, type Storage, type StoredFileInfo } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { fromStorage, HttpProblem, notFound } from '../http/problem';

/**
 * Result files, public by URL: the path carries 128 random bits, so it is unguessable,
 * and only exact file names resolve (nothing lists; dotfiles and the storage's temporary
 * files never match a key). Files never change once written, so caches may keep them.
 */
export function filesRouter(ctx: ApiContext): Router {
  const router = Router();
  const cacheControl = fileCacheControl(ctx.config.RECORD_RETENTION_HOURS);
  // GET routes answer HEAD too
  router.get('/files/:token/:name', async (req, res) => {
    const key = `${req.params.token}/${req.params.name}`;
    if (!isValidStorageKey(key)) throw notFound('File');
    const { storage } = ctx;
    const local = storage.localPath?.(key);
    if (!local && storage.open) return streamObject(storage as RangedStorage, key, req, res, cacheControl);
    const info = await storage.stat(key);
    if (!info) throw notFound('File');
    const headers = fileHeaders(key, info, cacheControl);
    // judged strongly here, as for objects (`send` compares If-Match weakly)
    if (preconditionFails(req, headers.ETag, headers['Last-Modified'])) throw preconditionFailed();
    if (local) await sendLocalFile(req, res, local, headers);
    else await streamFile(storage, key, info, headers, req, res);
  });
  return router;
}

/**
 * Files are public by URL and sent without credentials: a web app on any origin may read the
 * bytes (to draw them on a canvas, or save them), as it may already show them, problems too, and
 * ask for ranges and with validators, which a browser asks leave for first (a preflight OPTIONS,
 * answered by the app's OPTIONS handler, which this runs before).
 */
export function filesCors(): RequestHandler {
  return (req, res, next) => {
    res.set('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') {
      res.set({ 'Access-Control-Allow-Methods': 'GET, HEAD', 'Access-Control-Allow-Headers': 'Range, If-Match, If-None-Match, If-Range, If-Modified-Since, If-Unmodified-Since', 'Access-Control-Max-Age': '86400' });
    } else {
      res.set('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified');
    }
    next();
  };
}

function fileHeaders(key: string, info: StoredFileInfo, cacheControl: string): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': contentTypeFor(key),
    'Cache-Control': cacheControl,
    'X-Content-Type-Options': 'nosniff',
  };
  // the backend's own validator (an object's ETag) where it has one, else size and write time:
  // strong, since a file never changes once written (If-Match and If-Range take strong ones only)
  if (info.etag) headers.ETag = info.etag;
  else if (info.modifiedAt) headers.ETag = `"${info.bytes.toString(16)}-${info.modifiedAt.getTime().toString(16)}"`;
  if (info.modifiedAt) headers['Last-Modified'] = info.modifiedAt.toUTCString();
  return headers;
}

const preconditionFailed = () => new HttpProblem(412, 'Precondition failed', 'The file does not match the request’s preconditions');

type SendError = Error & { status?: number; statusCode?: number; code?: string; headers?: Record<string, string> };

/**
 * `res.sendFile` answers ranges, HEAD and conditional requests, and closes the file as soon as
 * the response ends, however it ends (a client that goes away mid-body included). If-Range is
 * judged here first, by strong comparison as for objects (`send` compares weakly): a range whose
 * If-Range does not hold is dropped, so the whole file is sent (If-Match is judged by the caller).
 */
function sendLocalFile(req: Request, res: Response, file: string, headers: Record<string, string>): Promise<void> {
  if (req.headers['if-range'] !== undefined) {
    if (!ifRangeHolds(req.get('if-range'), headers.ETag, headers['Last-Modified'])) delete req.headers.range;
    delete req.headers['if-range'];
  }
  return new Promise((resolve, reject) => {
    // root is the file's own folder: send's traversal and dotfile guards then judge the name alone
    res.sendFile(path.basename(file), { root: path.dirname(file), dotfiles: 'deny', headers, cacheControl: false, lastModified: false }, (err?: SendError) => {
      // after the headers, an error means the client went away; send has closed the file already.
      // Before them too when send says so (ECONNABORTED): there is no one to answer, and nothing went wrong here
      if (!err || res.headersSent || err.code === 'ECONNABORTED') return resolve();
      // send may have set the file's headers before refusing (412, 416): none belong on a problem
      clearFileHeaders(res);
      const status = err.status ?? err.statusCode ?? 500;
      if (status === 412) return reject(preconditionFailed());
      if (status === 416) return reject(new HttpProblem(416, 'Range not satisfiable', 'The requested range lies outside the file', undefined, err.headers ?? {}));
      if (status >= 400 && status < 500) return reject(notFound('File'));
      reject(err);
    });
  });
}

type RangedStorage = Storage & Required<Pick<Storage, 'open'>>;

/** The headers that describe a file's body (ours, and those `send` sets): none belong on a problem answered instead. */
const FILE_HEADERS = ['Content-Type', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'Cache-Control', 'ETag', 'Last-Modified'];

/** Takes the file's headers back; the response's own (request id, security headers) stay. */
function clearFileHeaders(res: Response): void {
  for (const name of FILE_HEADERS) res.removeHeader(name);
}

/**
 * If-Match (strong comparison) and, without it, If-Unmodified-Since (RFC 9110 §13.2.2): whether
 * the request's preconditions fail for a file with this ETag and modification time.
 */
function preconditionFails(req: Request, etag: string | undefined, lastModified: string | undefined): boolean {
  const ifMatch = req.get('if-match');
  if (ifMatch !== undefined) {
    if (ifMatch.trim() === '*') return false;
    const strong = etag !== undefined && !etag.startsWith('W/') ? etag : undefined;
    return !ifMatch.split(',').some((tag) => strong !== undefined && tag.trim() === strong);
  }
  const since = Date.parse(req.get('if-unmodified-since') ?? '');
  const modified = Date.parse(lastModified ?? '');
  return Number.isFinite(since) && Number.isFinite(modified) && modified > since;
}

/**
 * Backends with ranged reads (object storage): HEAD, conditional requests (304, 412), single byte
 * ranges (206, 416), one read per response, as `send` answers for local files. A plain GET costs
 * one request to the store; the others look at the object first. The read is destroyed with the
 * response, however it ends, so a client that goes away releases the store's connection at once.
 */
async function streamObject(storage: RangedStorage, key: string, req: Request, res: Response, cacheControl: string): Promise<void> {
  const conditional = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'].some((h) => req.headers[h] !== undefined);
  const plainGet = req.method === 'GET' && req.headers.range === undefined && !conditional;
  let opened: OpenedFile | null = null;
  let info: StoredFileInfo | null;
  if (plainGet) {
    opened = await fromStorage(() => storage.open(key));
    info = opened?.info ?? null;
  } else {
    info = await fromStorage(() => storage.stat(key));
  }
  if (!info) throw notFound('File');
  res.set({ ...fileHeaders(key, info, cacheControl), 'Accept-Ranges': 'bytes' });
  if (preconditionFails(req, res.get('ETag'), res.get('Last-Modified'))) {
    clearFileHeaders(res);
    throw preconditionFailed();
  }
  if (req.fresh) {
    res.removeHeader('Content-Type');
    res.status(304).end();
    return;
  }
  const range = requestedRange(req, info, res.get('ETag'), res.get('Last-Modified'));
  if (range === 'unsatisfiable') {
    clearFileHeaders(res);
    throw new HttpProblem(416, 'Range not satisfiable', 'The requested range lies outside the file', undefined, { 'Content-Range': `bytes */${info.bytes}` });
  }
  res.status(range ? 206 : 200).set('Content-Length', String(range ? range.end - range.start + 1 : info.bytes));
  if (range) res.set('Content-Range', `bytes ${range.start}-${range.end}/${info.bytes}`);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  opened ??= await fromStorage(() => storage.open(key, range));
  if (!opened) {
    // removed between the look and the read (its retention ended)
    clearFileHeaders(res);
    throw notFound('File');
  }
  try {
    // pipeline destroys both ends when either fails or closes early
    await pipeline(opened.stream, res);
  } catch (err) {
    if (res.headersSent || req.destroyed) return;
    clearFileHeaders(res);
    throw err;
  }
}

/**
 * The one byte range asked for, if it applies: none when there is no Range header, when
 * If-Range no longer matches, or for several ranges or a malformed header (the whole file
 * then, as RFC 9110 allows).
 */
function requestedRange(req: Request, info: StoredFileInfo, etag: string | undefined, lastModified: string | undefined): ByteRange | undefined | 'unsatisfiable' {
  if (req.headers.range === undefined || !ifRangeHolds(req.get('if-range'), etag, lastModified)) return undefined;
  const ranges = req.range(info.bytes, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  if (ranges === -2 || ranges === undefined || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  return { start: ranges[0]!.start, end: ranges[0]!.end };
}

/** If-Range: a strong ETag that matches exactly, or a date no earlier than the file's. */
function ifRangeHolds(ifRange: string | undefined, etag: string | undefined, lastModified: string | undefined): boolean {
  if (ifRange === undefined) return true;
  if (ifRange.includes('"')) return etag !== undefined && !etag.startsWith('W/') && ifRange.trim() === etag;
  const asked = Date.parse(ifRange);
  const modified = lastModified ? Date.parse(lastModified) : NaN;
  return Number.isFinite(asked) && Number.isFinite(modified) && modified <= asked;
}

/** Backends without local files or ranged reads: one stream per response, destroyed with it. No ranges. */
async function streamFile(storage: Storage, key: string, info: StoredFileInfo, headers: Record<string, string>, req: Request, res: Response): Promise<void> {
  res.set({ ...headers, 'Content-Length': String(info.bytes), 'Accept-Ranges': 'none' });
  if (req.fresh) {
    for (const name of ['Content-Type', 'Content-Length']) res.removeHeader(name);
    res.status(304).end();
    return;
  }
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  try {
    // pipeline destroys both ends when either fails or closes early
    await pipeline(storage.createReadStream(key), res);
  } catch (err) {
    if (res.headersSent || req.destroyed) return;
    clearFileHeaders(res);
    throw err;
  }
}
