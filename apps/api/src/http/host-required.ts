import type { RequestHandler } from 'express';
import { HttpProblem, sendProblem } from './problem';

/** HTTP/1.1 requires a Host header (RFC 9112, 3.2): a request without one gets 400, as problem+json like every other. */
export const hostRequired: RequestHandler = (req, res, next) => {
  if (req.httpVersion === '1.1' && req.headers.host === undefined) {
    res.setHeader('Connection', 'close');
    sendProblem(res, new HttpProblem(400, 'Bad request', 'An HTTP/1.1 request must carry a Host header'));
    return;
  }
  next();
};
