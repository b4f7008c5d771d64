import { STATUS_CODES } from 'node:http';
import type { RequestHandler } from 'express';
import { HttpProblem, problemBody } from './problem';

type BoardError = { error?: { key?: unknown } | string; message?: unknown; details?: unknown };

/** "ERRORS.JOB_NOT_FOUND" → "Job not found". */
function sentenceOf(key: string): string {
  const words = key.replace(/^ERRORS\./, '').toLowerCase().replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * Bull Board's JSON API answers its errors in a shape of its own (`{ error: { key }, message?,
 * details? }`, and in development `details` is the stack). They go out as problem+json like every
 * other 4xx/5xx of the API, with the board's own members kept beside the problem's (its page
 * reads them) and never the stack.
 */
export function boardProblems(): RequestHandler {
  return (_req, res, next) => {
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      if (res.statusCode < 400 || body === null || typeof body !== 'object' || Array.isArray(body)) return json(body);
      const { details: _stack, ...board } = body as BoardError;
      const key = typeof board.error === 'object' && typeof board.error?.key === 'string' ? board.error.key : typeof board.error === 'string' ? board.error : undefined;
      const detail = typeof board.message === 'string' && board.message ? board.message : key ? sentenceOf(key) : 'The dashboard refused the request';
      res.type('application/problem+json');
      return json({ ...board, ...problemBody(new HttpProblem(res.statusCode, STATUS_CODES[res.statusCode] ?? 'Error', detail)) });
    };
    next();
  };
}
