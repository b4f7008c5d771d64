import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import { contentTypeFor, isValidStorageKey, type Storage, type StoredFileInfo } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem, notFound } from '../http/problem';

/**
 * Result files, public by URL: the path carries 128 random bits, so it is unguessable,
 * and only exact file names resolve (nothing lists; dotfiles and the storage's temporary
 * files never match a key). Files never change once written, so caches may keep them.
 */
export function filesRouter(ctx: ApiContext): Router {
  const router = Router();
  // GET routes answer HEAD too
  router.get('/files/:token/:name', async (req, res) => {
    const key = `${req.params.token}/${req.params.name}`;
    if (!isValidStorageKey(key)) throw notFound('File');
    const info = await ctx.storage.stat(key);
    if (!info) throw notFound('File');
    const headers = fileHeaders(key, info);
    const local = ctx.storage.localPath?.(key);
    if (local) await sendLocalFile(res, local, headers);
    else await streamFile(ctx.storage, key, info, headers, req, res);
  });
  return router;
}

function fileHeaders(key: string, info: StoredFileInfo): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': contentTypeFor(key),
    'Cache-Control': 'public, max-age=31536000, immutable',
    'X-Content-Type-Options': 'nosniff',
  };
  if (info.modifiedAt) {
    // the form `send` and express.static use: size and write time
    headers.ETag = `W/"${info.bytes.toString(16)}-${info.modifiedAt.getTime().toString(16)}"`;
    headers['Last-Modified'] = info.modifiedAt.toUTCString();
  }
  return headers;
}

type SendError = Error & { status?: number; statusCode?: number; headers?: Record<string, string> };

/**
 * `res.sendFile` answers ranges, HEAD and conditional requests, and closes the file as soon as
 * the response ends, however it ends (a client that goes away mid-body included).
 */
function sendLocalFile(res: Response, file: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    // root is the file's own folder: send's traversal and dotfile guards then judge the name alone
    res.sendFile(path.basename(file), { root: path.dirname(file), dotfiles: 'deny', headers, cacheControl: false, lastModified: false }, (err?: SendError) => {
      // after the headers, an error means the client went away; send has closed the file already
      if (!err || res.headersSent) return resolve();
      // send may have set the file's headers before refusing (412, 416): none belong on a problem
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      const status = err.status ?? err.statusCode ?? 500;
      if (status === 412) return reject(new HttpProblem(412, 'Precondition failed', 'The file does not match the request’s preconditions'));
      if (status === 416) return reject(new HttpProblem(416, 'Range not satisfiable', 'The requested range lies outside the file', undefined, err.headers ?? {}));
      if (status >= 400 && status < 500) return reject(notFound('File'));
      reject(err);
    });
  });
}

/** Backends without local files: one stream per response, destroyed with it. No ranges. */
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
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    throw err;
  }
}
