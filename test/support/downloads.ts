import { request } from 'node:http';
import { connect } from 'node:net';

/** Raw HTTP downloads, as browsers and impatient clients make them. */

/** Starts a raw GET, reads the headers and the first body bytes, then stops reading and closes the socket. */
export function abortedDownload(baseUrl: string, path: string): Promise<{ bodyBytes: number }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const headerEnd = received.indexOf('\r\n\r\n');
      if (headerEnd < 0 || received.length - headerEnd - 4 < 1) return;
      socket.pause();
      socket.removeAllListeners('data');
      if (!received.subarray(0, 12).toString().startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected answer: ${received.subarray(0, 80).toString()}`));
      // give the server time to fill the socket buffers and block on the next write
      setTimeout(() => {
        socket.destroy();
        resolve({ bodyBytes: received.length - headerEnd - 4 });
      }, 20);
    });
  });
}

/** A GET or HEAD with node:http, so 206 and 304 arrive untouched. */
export function get(baseUrl: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
