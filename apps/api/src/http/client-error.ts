import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { HttpProblem, problemJson } from './problem';

/**
 * Requests Node's HTTP parser refuses before Express sees them (conflicting or non-numeric
 * Content-Length, Content-Length with chunked encoding, malformed request lines, oversized
 * headers), and those with an `Expect` other than 100-continue, get a problem+json answer too,
 * instead of Node's bare status line.
 */
export function answerClientErrors(server: Server): void {
  // Node refuses an HTTP/1.1 request without Host with a bare 400; the app answers it instead (hostRequired)
  (server as Server & { requireHostHeader: boolean }).requireHostHeader = false;
  // Node answers these 417 with no body; the request is not handled, and its body not read
  server.on('checkExpectation', (_req, res: ServerResponse) => {
    const body = problemJson(new HttpProblem(417, 'Expectation failed', 'The only Expect this server meets is 100-continue'));
    res.shouldKeepAlive = false;
    res.writeHead(417, { 'Content-Type': 'application/problem+json', 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff' }).end(body);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    // a request cut off in its body (the client went away, or it timed out): no more of it
    // will come, and nothing would end it, so the connection goes (its reader sees it aborted)
    if (pending && !pending.req.complete) {
      socket.destroy();
      return;
    }
    // garbage after a complete request (a Content-Length shorter than the body): that request
    // is answered in full, then the connection closes
    if (pending) {
      pending.shouldKeepAlive = false;
      pending.once('finish', () => socket.end());
      pending.once('close', () => socket.destroy());
      return;
    }
    const problem =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new HttpProblem(431, 'Request header fields too large', 'The request headers are larger than the limit')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new HttpProblem(408, 'Request timeout', 'The request did not arrive in time')
          : new HttpProblem(400, 'Bad request', 'The request is not valid HTTP/1.1 (for example a missing, conflicting or non-numeric Content-Length)');
    const body = problemJson(problem);
    socket.end(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
