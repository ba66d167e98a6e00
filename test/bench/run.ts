/**
 * `npm run bench`: the gateway's cost next to the proxying itself, measured in ONE run with the
 * configurations alternating (shared/perf-baselines.md method, simplified):
 *   (a) the MCP server stand-in directly,
 *   (b) a minimal Node passthrough proxy (undici, no checks),
 *   (c) P's /mcp: token check, consent check, sealed upstream token, forward, GW-13 scrubber, audit;
 *   (d) the same P without the GW-13 scrubber (a bench-only ablation, see p-server.ts).
 * Concurrency 10 and 100, ROUNDS rounds of SECONDS each; servers pinned to CPU 0 and the load
 * generator to CPU 1 when `taskset` exists. Prints medians (rates, latencies, and the CPU time the
 * server under test spent per request), ratios c/b and c/a, then the token endpoint (refresh
 * grant, rotating) and DCR rates. Loopback only; bounded time (~3 minutes).
 *   --readme   also rewrite README.md's Performance block
 *   --profile  run P and (b) with --cpu-prof (profiles written to test/artifacts/ and
 *              test/artifacts/b/)
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runLoad, median, type LoadResult } from './load.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = [10, 100];
const root = fileURLToPath(new URL('../../', import.meta.url));
const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return cpus().length > 1;
  } catch {
    return false;
  }
})();
if (hasTaskset) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const children: ChildProcess[] = [];
async function start(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Record<string, any>> {
  const args = [...nodeArgs, '--import', 'tsx', script];
  const child = hasTaskset
    ? spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    try {
      const msg = JSON.parse(line) as Record<string, any>;
      if (msg.ready) return msg;
    } catch {
      // not ours
    }
  }
  throw new Error(`${script} exited before it was ready`);
}
const stopAll = () => children.forEach((c) => c.kill('SIGTERM'));
process.on('exit', stopAll);

const body = (id: number) => `{"jsonrpc":"2.0","id":${id},"method":"tools/list","params":{}}`;
const profile = process.argv.includes('--profile');

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; servers ${hasTaskset ? 'on CPU 0, load on CPU 1' : 'unpinned'}; ${ROUNDS} rounds × ${SECONDS} s`);
const upstream = await start('test/bench/upstream.ts', {});
const target = `http://127.0.0.1:${upstream.port}/mcp`;
const proxy = await start('test/bench/passthrough.ts', { TARGET: target }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts/b`] : []);
if (profile) mkdirSync(`${root}test/artifacts`, { recursive: true });
const p = await start('test/bench/p-server.ts', { TARGET: target, BENCH_TOKENS: '20' }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts`] : []);
const tokens = p.tokens as { access: string; refresh: string; clientId: string }[];
const ablatedTokens = p.ablatedTokens as { access: string }[];

type Config = 'a' | 'b' | 'c' | 'd';
const urls: Record<Config, string> = { a: target, b: `http://127.0.0.1:${proxy.port}/mcp`, c: `${p.url}/mcp`, d: `${p.url}/mcp` };
const labels: Record<Config, string> = { a: '(a) MCP server direct', b: '(b) Node passthrough proxy', c: "(c) P's /mcp (check + scrub + audit)", d: '(d) (c) without the GW-13 scrubber (ablation)' };

const cpuPorts: Record<Config, number> = { a: upstream.cpuPort as number, b: proxy.cpuPort as number, c: p.cpuPort as number, d: p.cpuPort as number };
const cpuOf = async (config: Config) => ((await (await fetch(`http://127.0.0.1:${cpuPorts[config]}/`)).json()) as { cpu: number }).cpu;

type Measured = LoadResult & { cpuPerRequest: number };
/** One load run; also the CPU time (µs) the server under test spent per request (for (b) and (c), the proxy alone). */
async function load(config: Config, connections: number, seconds: number): Promise<Measured> {
  const url = new URL(urls[config]);
  const cpuBefore = await cpuOf(config);
  const result = await runLoad({
    url: url.href,
    connections,
    durationMs: seconds * 1000,
    request: (worker, n) => ({
      method: 'POST',
      path: url.pathname,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${config === 'c' ? (tokens[(worker + n) % tokens.length] as { access: string }).access : config === 'd' ? (ablatedTokens[(worker + n) % ablatedTokens.length] as { access: string }).access : 'upstream-bench-token'}`,
      },
      body: body(n),
    }),
  });
  return { ...result, cpuPerRequest: ((await cpuOf(config)) - cpuBefore) / Math.max(1, result.requests) };
}

// Warm-up: JIT, connection pools, SQLite page cache.
for (const config of (process.env.BENCH_ONLY?.split(',') as Config[] | undefined) ?? (['a', 'b', 'c', 'd'] as Config[])) await load(config, 10, 1);

const results = new Map<string, Measured[]>();
const configs: Config[] = (process.env.BENCH_ONLY?.split(',') as Config[] | undefined) ?? ['a', 'b', 'c', 'd'];
for (let round = 0; round < ROUNDS; round++) {
  for (const connections of CONCURRENCY) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length] as Config);
    for (const config of order) {
      const r = await load(config, connections, SECONDS);
      const key = `${config}@${connections}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      process.stderr.write(`round ${round + 1} c=${connections} ${config}: ${Math.round(r.rps)} req/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors} server CPU ${r.cpuPerRequest.toFixed(1)} µs/req\n`);
    }
  }
}

const lines: string[] = [];
lines.push('| config | concurrency | req/s (median) | p50 ms | p99 ms | server CPU µs/req | errors |', '|---|---|---|---|---|---|---|');
const med = (key: string, f: (r: Measured) => number) => median((results.get(key) ?? []).map(f));
for (const connections of CONCURRENCY) {
  for (const config of configs) {
    const key = `${config}@${connections}`;
    lines.push(`| ${labels[config]} | ${connections} | ${Math.round(med(key, (r) => r.rps))} | ${med(key, (r) => r.p50).toFixed(2)} | ${med(key, (r) => r.p99).toFixed(2)} | ${med(key, (r) => r.cpuPerRequest).toFixed(1)} | ${(results.get(key) ?? []).reduce((n, r) => n + r.errors, 0)} |`);
  }
}
lines.push('', '| ratio (medians, same run) | c=10 | c=100 | target |', '|---|---|---|---|');
const ratio = (x: string, y: string, f: (r: Measured) => number) => CONCURRENCY.map((c) => (med(`${x}@${c}`, f) / med(`${y}@${c}`, f)).toFixed(2));
lines.push(`| req/s c/b | ${ratio('c', 'b', (r) => r.rps).join(' | ')} | ≥ 0.85 |`);
lines.push(`| req/s c/a | ${ratio('c', 'a', (r) => r.rps).join(' | ')} | — |`);
lines.push(`| p50 c/b | ${ratio('c', 'b', (r) => r.p50).join(' | ')} | ≤ 1.2 at c=10 |`);
lines.push(`| CPU µs/req c − b (the gateway's own cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`b@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`);
if (configs.includes('c') && configs.includes('d')) {
  lines.push(`| req/s c/d (with / without the GW-13 scrubber) | ${ratio('c', 'd', (r) => r.rps).join(' | ')} | — |`);
  lines.push(`| CPU µs/req c − d (the GW-13 scrubber's cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`d@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`);
}

if (process.env.BENCH_ONLY) {
  console.log(lines.join('\n'));
  stopAll();
  await new Promise((r) => setTimeout(r, 1000));
  process.exit(0);
}

// Token endpoint (refresh grant, each worker rotating its own chain) and DCR.
const chains = tokens.map((t) => ({ clientId: t.clientId, rt: t.refresh }));
const refreshRuns: LoadResult[] = [];
const dcrRuns: LoadResult[] = [];
for (let round = 0; round < ROUNDS; round++) {
  refreshRuns.push(
    await runLoad({
      url: `${p.url}/token`,
      connections: 10,
      durationMs: SECONDS * 1000,
      request: (worker) => ({
        method: 'POST',
        path: '/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: (chains[worker] as { rt: string }).rt, client_id: (chains[worker] as { clientId: string }).clientId }).toString(),
      }),
      onBody: (worker, status, text) => {
        if (status === 200) (chains[worker] as { rt: string }).rt = (JSON.parse(text) as { refresh_token: string }).refresh_token;
      },
    }),
  );
  dcrRuns.push(
    await runLoad({
      url: `${p.url}/register`,
      connections: 10,
      durationMs: SECONDS * 1000,
      request: () => ({
        method: 'POST',
        path: '/register',
        headers: { 'content-type': 'application/json' },
        body: '{"client_name":"bench-mcp-client","redirect_uris":["http://127.0.0.1:33418/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}',
      }),
    }),
  );
}
lines.push('', '| authorization server (c=10) | req/s (median) | p50 ms | p99 ms | errors |', '|---|---|---|---|---|');
for (const [label, runs] of [['`POST /token` refresh grant (rotating)', refreshRuns], ['`POST /register` (DCR, admission policy)', dcrRuns]] as const) {
  lines.push(`| ${label} | ${Math.round(median(runs.map((r) => r.rps)))} | ${median(runs.map((r) => r.p50)).toFixed(2)} | ${median(runs.map((r) => r.p99)).toFixed(2)} | ${runs.reduce((n, r) => n + r.errors, 0)} |`);
}

const table = lines.join('\n');
console.log(`\n${table}`);
if (process.argv.includes('--readme')) {
  const readme = `${root}README.md`;
  const text = readFileSync(readme, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  if (text.includes(start) && text.includes(end)) {
    const stamp = `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${hasTaskset ? 'servers pinned to one core and the load generator to the other' : 'unpinned'}; medians of ${ROUNDS} rounds × ${SECONDS} s.`;
    writeFileSync(readme, `${text.slice(0, text.indexOf(start) + start.length)}\n${stamp}\n\n${table}\n${text.slice(text.indexOf(end))}`);
    console.log('README.md Performance block updated');
  }
}
stopAll();
await new Promise((r) => setTimeout(r, 500));
if (profile && existsSync(`${root}test/artifacts`)) console.log('CPU profile of P written to test/artifacts/*.cpuprofile');
process.exit(0);
