/**
 * Raw HTTP/1.1 on a fresh TCP connection: the request bytes go out exactly as written (fetch and
 * supertest would normalise paths, refuse bad headers or add their own), for hostile-input tests.
 */
import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  /** lower-case names; the last value wins */
  headers: Record<string, string>;
  body: string;
}

/** Send `request` (use `Connection: close`) and read the one response until the server closes. */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return reject(new Error(`no HTTP response (${text.length} bytes received)`));
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(end + 4) });
    };
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (err) => (chunks.length ? finish() : !settled && ((settled = true), reject(err))));
    socket.setTimeout(timeoutMs, () => socket.destroy());
    // Not end(): a half-closed connection makes Node's server drop a response still being prepared.
    socket.write(request);
  });
}
