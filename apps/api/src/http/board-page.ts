import type { RequestHandler } from 'express';

/** A `<link>` to another origin (Bull Board's page links its web fonts from Google Fonts). */
const REMOTE_LINK = /<link\b[^>]*\bhref="(?:https?:)?\/\/[^"]*"[^>]*>\s*/gi;

/**
 * Bull Board's page without links to other origins: the operators' browsers ask nothing of third
 * parties (their addresses stay theirs, and an offline network gets no failed loads), and the
 * board keeps the API's own CSP, which lets in nothing but this origin. Its text falls back to
 * the browser's sans-serif and monospace fonts.
 */
export function boardPageOffline(): RequestHandler {
  return (_req, res, next) => {
    const send = res.send.bind(res);
    res.send = (body?: unknown) => send(typeof body === 'string' && /^\s*<!doctype html/i.test(body) ? body.replace(REMOTE_LINK, '') : body);
    next();
  };
}
