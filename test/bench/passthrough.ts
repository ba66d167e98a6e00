/**
 * (b) The baseline proxy: a minimal Node passthrough with undici and no checks at all — the
 * same transport as P's gateway, without token check, U token lookup or audit.
 */
import { createServer } from 'node:http';
import { serveCpuStats } from './cpu-stats.js';
import { Pool } from 'undici';

const target = new URL(process.env.TARGET as string);
const pool = new Pool(target.origin, { connections: 256, bodyTimeout: 0 });

const server = createServer((req, res) => {
  pool
    .request({
      method: req.method as 'POST',
      path: target.pathname,
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json', accept: req.headers.accept ?? '*/*', authorization: 'Bearer upstream-bench-token' },
      body: req,
    })
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, { 'content-type': String(headers['content-type'] ?? 'application/json') });
      body.pipe(res);
    })
    .catch(() => {
      res.writeHead(502);
      res.end();
    });
});
server.keepAliveTimeout = 65_000;
const cpuPort = await serveCpuStats();
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as { port: number }).port, cpuPort })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
