/**
 * Each benchmark server also answers its own CPU time (user + system, µs) on a second loopback
 * port, so the runner can report the CPU each proxy spends per request next to the rates, and its
 * resident set size (RSS, bytes) for the memory goals.
 */
import { createServer } from 'node:http';

export function serveCpuStats(): Promise<number> {
  const server = createServer((_req, res) => {
    const { user, system } = process.cpuUsage();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ cpu: user + system, rss: process.memoryUsage.rss() }));
  });
  server.unref();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}
