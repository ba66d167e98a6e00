/**
 * (a) The MCP server stand-in for the benchmark: a bare node:http JSON-RPC responder (the
 * "floor" of shared/perf-baselines.md). It checks the upstream token the gateway must send.
 */
import { createServer } from 'node:http';
import { serveCpuStats } from './cpu-stats.js';

const TOKEN = process.env.BENCH_UPSTREAM_TOKEN ?? 'upstream-bench-token';
const RESULT = { tools: [{ name: 'whoami', description: 'bench', inputSchema: { type: 'object', properties: {} } }] };

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401);
      res.end();
      return;
    }
    let id: unknown = null;
    try {
      id = (JSON.parse(Buffer.concat(chunks).toString()) as { id?: unknown }).id ?? null;
    } catch {
      // keep null
    }
    const body = JSON.stringify({ jsonrpc: '2.0', id, result: RESULT });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
const cpuPort = await serveCpuStats();
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as { port: number }).port, cpuPort })}\n`);
});
