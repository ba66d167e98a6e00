/**
 * `npm run bench`: the gateway's cost next to the proxying itself, measured in ONE run with the
 * configurations alternating (shared/perf-baselines.md method, simplified):
 *   (a) the MCP server stand-in directly,
 *   (b) a minimal Node passthrough proxy (undici, no checks),
 *   (c) P's /mcp: token check, consent check, sealed upstream token, forward, GW-13 scrubber, audit;
 *   (d) the same P without the GW-13 scrubber (a bench-only ablation, see p-server.ts);
 *   (e) with BENCH_DATABASE_URL or TEST_DATABASE_URL (a PostgreSQL superuser URL): a second P, the
 *       same as (c) but on PostgreSQL (a fresh database, dropped at the end) — issue 11's goals:
 *       gateway req/s e/c ≥ 0.8 at c=10 and c=100, /token and /register PostgreSQL/SQLite ≥ 0.7, and
 *       the RSS of each P at the end ≤ 150 MB.
 * Concurrency 10 and 100, ROUNDS rounds of SECONDS each; servers pinned to CPU 0 and the load
 * generator to CPU 1 when `taskset` exists. Prints medians (rates, latencies, and the CPU time the
 * server under test spent per request), ratios c/b and c/a, then the token endpoint (refresh
 * grant, rotating) and DCR rates, per P. Loopback only; bounded time (~3 minutes, ~4 with (e)).
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
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';

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

// (e): P on PostgreSQL, in a fresh database of the cluster named by a superuser URL.
const pgAdminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
let pgDatabase: TestDatabase | undefined;
if (pgAdminUrl) {
  process.env.TEST_DATABASE_URL = pgAdminUrl; // test/helpers/pg.ts creates databases there
  pgDatabase = await createTestDatabase('bench');
}

const body = (id: number) => `{"jsonrpc":"2.0","id":${id},"method":"tools/list","params":{}}`;
const profile = process.argv.includes('--profile');

console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; servers ${hasTaskset ? 'on CPU 0, load on CPU 1' : 'unpinned'}; ${ROUNDS} rounds × ${SECONDS} s`,
);
const upstream = await start('test/bench/upstream.ts', {});
const target = `http://127.0.0.1:${upstream.port}/mcp`;
const proxy = await start('test/bench/passthrough.ts', { TARGET: target }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts/b`] : []);
if (profile) mkdirSync(`${root}test/artifacts`, { recursive: true });
const p = await start('test/bench/p-server.ts', { TARGET: target, BENCH_TOKENS: '20', TEST_ENGINE: 'sqlite' }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts`] : []);
const tokens = p.tokens as { access: string; refresh: string; clientId: string }[];
const ablatedTokens = p.ablatedTokens as { access: string }[];
const pPg = pgDatabase ? await start('test/bench/p-server.ts', { TARGET: target, BENCH_TOKENS: '20', TEST_ENGINE: 'sqlite', P_DATABASE_URL: pgDatabase.url }) : undefined;
const pgTokens = (pPg?.tokens ?? []) as { access: string; refresh: string; clientId: string }[];

type Config = 'a' | 'b' | 'c' | 'd' | 'e';
const urls: Record<Config, string> = { a: target, b: `http://127.0.0.1:${proxy.port}/mcp`, c: `${p.url}/mcp`, d: `${p.url}/mcp`, e: `${pPg?.url}/mcp` };
const labels: Record<Config, string> = {
  a: '(a) MCP server direct',
  b: '(b) Node passthrough proxy',
  c: "(c) P's /mcp (check + scrub + audit)",
  d: '(d) (c) without the GW-13 scrubber (ablation)',
  e: '(e) (c) on PostgreSQL',
};

const cpuPorts: Record<Config, number> = { a: upstream.cpuPort as number, b: proxy.cpuPort as number, c: p.cpuPort as number, d: p.cpuPort as number, e: pPg?.cpuPort as number };
const statsOf = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { cpu: number; rss: number };
const cpuOf = async (config: Config) => (await statsOf(cpuPorts[config])).cpu;
const tokenFor = (config: Config, i: number) =>
  config === 'c'
    ? (tokens[i % tokens.length] as { access: string }).access
    : config === 'd'
      ? (ablatedTokens[i % ablatedTokens.length] as { access: string }).access
      : config === 'e'
        ? (pgTokens[i % pgTokens.length] as { access: string }).access
        : 'upstream-bench-token';

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
        authorization: `Bearer ${tokenFor(config, worker + n)}`,
      },
      body: body(n),
    }),
  });
  return { ...result, cpuPerRequest: ((await cpuOf(config)) - cpuBefore) / Math.max(1, result.requests) };
}

// Warm-up: JIT, connection pools, SQLite page cache.
const configs: Config[] = (process.env.BENCH_ONLY?.split(',') as Config[] | undefined) ?? (pPg ? ['a', 'b', 'c', 'd', 'e'] : ['a', 'b', 'c', 'd']);
for (const config of configs) await load(config, 10, 1);

const results = new Map<string, Measured[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const connections of CONCURRENCY) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length] as Config);
    for (const config of order) {
      const r = await load(config, connections, SECONDS);
      const key = `${config}@${connections}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      process.stderr.write(
        `round ${round + 1} c=${connections} ${config}: ${Math.round(r.rps)} req/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors} server CPU ${r.cpuPerRequest.toFixed(1)} µs/req\n`,
      );
    }
  }
}

const lines: string[] = [];
lines.push('| config | concurrency | req/s (median) | p50 ms | p99 ms | server CPU µs/req | errors |', '|---|---|---|---|---|---|---|');
const med = (key: string, f: (r: Measured) => number) => median((results.get(key) ?? []).map(f));
for (const connections of CONCURRENCY) {
  for (const config of configs) {
    const key = `${config}@${connections}`;
    lines.push(
      `| ${labels[config]} | ${connections} | ${Math.round(med(key, (r) => r.rps))} | ${med(key, (r) => r.p50).toFixed(2)} | ${med(key, (r) => r.p99).toFixed(2)} | ${med(key, (r) => r.cpuPerRequest).toFixed(1)} | ${(results.get(key) ?? []).reduce((n, r) => n + r.errors, 0)} |`,
    );
  }
}
lines.push('', '| ratio (medians, same run) | c=10 | c=100 | target |', '|---|---|---|---|');
const ratio = (x: string, y: string, f: (r: Measured) => number) => CONCURRENCY.map((c) => (med(`${x}@${c}`, f) / med(`${y}@${c}`, f)).toFixed(2));
lines.push(`| req/s c/b | ${ratio('c', 'b', (r) => r.rps).join(' | ')} | ≥ 0.85 |`);
lines.push(`| req/s c/a | ${ratio('c', 'a', (r) => r.rps).join(' | ')} | — |`);
lines.push(`| p50 c/b | ${ratio('c', 'b', (r) => r.p50).join(' | ')} | ≤ 1.2 at c=10 |`);
lines.push(`| CPU µs/req c − b (the gateway's own cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`b@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`);
if (configs.includes('c') && configs.includes('e')) {
  lines.push(`| req/s e/c (PostgreSQL / SQLite) | ${ratio('e', 'c', (r) => r.rps).join(' | ')} | ≥ 0.8 |`);
  lines.push(
    `| CPU µs/req e − c (PostgreSQL's extra cost in P) | ${CONCURRENCY.map((c) => (med(`e@${c}`, (r) => r.cpuPerRequest) - med(`c@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`,
  );
}
if (configs.includes('c') && configs.includes('d')) {
  lines.push(`| req/s c/d (with / without the GW-13 scrubber) | ${ratio('c', 'd', (r) => r.rps).join(' | ')} | — |`);
  lines.push(
    `| CPU µs/req c − d (the GW-13 scrubber's cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`d@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`,
  );
}

if (process.env.BENCH_ONLY) {
  console.log(lines.join('\n'));
  stopAll();
  await pgDatabase?.drop();
  await new Promise((r) => setTimeout(r, 1000));
  process.exit(0);
}

// Token endpoint (refresh grant, each worker rotating its own chain) and DCR, on each P.
const servers = [{ label: 'SQLite', url: p.url as string, seeded: tokens }, ...(pPg ? [{ label: 'PostgreSQL', url: pPg.url as string, seeded: pgTokens }] : [])];
const authRuns = servers.map((server) => ({ ...server, chains: server.seeded.map((t) => ({ clientId: t.clientId, rt: t.refresh })), refresh: [] as LoadResult[], dcr: [] as LoadResult[] }));
for (let round = 0; round < ROUNDS; round++) {
  for (const { url: pUrl, chains, refresh: refreshRuns, dcr: dcrRuns } of round % 2 === 0 ? authRuns : [...authRuns].reverse()) {
    refreshRuns.push(
      await runLoad({
        url: `${pUrl}/token`,
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
        url: `${pUrl}/register`,
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
}
lines.push('', '| authorization server (c=10) | req/s (median) | p50 ms | p99 ms | errors |', '|---|---|---|---|---|');
for (const run of authRuns) {
  const on = pPg ? `, ${run.label}` : '';
  for (const [label, runs] of [
    [`\`POST /token\` refresh grant (rotating)${on}`, run.refresh],
    [`\`POST /register\` (DCR, admission policy)${on}`, run.dcr],
  ] as const) {
    lines.push(
      `| ${label} | ${Math.round(median(runs.map((r) => r.rps)))} | ${median(runs.map((r) => r.p50)).toFixed(2)} | ${median(runs.map((r) => r.p99)).toFixed(2)} | ${runs.reduce((n, r) => n + r.errors, 0)} |`,
    );
  }
}
if (authRuns.length === 2) {
  const [sqlite, postgres] = authRuns as [(typeof authRuns)[number], (typeof authRuns)[number]];
  const rate = (runs: LoadResult[]) => median(runs.map((r) => r.rps));
  lines.push('', '| authorization server, PostgreSQL / SQLite (medians, same run) | ratio | target |', '|---|---|---|');
  lines.push(`| \`POST /token\` req/s | ${(rate(postgres.refresh) / rate(sqlite.refresh)).toFixed(2)} | ≥ 0.7 |`);
  lines.push(`| \`POST /register\` req/s | ${(rate(postgres.dcr) / rate(sqlite.dcr)).toFixed(2)} | ≥ 0.7 |`);
}
// Memory: each P's resident set at the end of the run (after all the load above).
lines.push('', '| process | RSS at the end, MB | target |', '|---|---|---|');
for (const [label, port] of [['P on SQLite ((c), (d))', p.cpuPort], ...(pPg ? [['P on PostgreSQL ((e))', pPg.cpuPort]] : []), ['(b) Node passthrough proxy', proxy.cpuPort]] as [string, number][]) {
  lines.push(`| ${label} | ${((await statsOf(port)).rss / 2 ** 20).toFixed(1)} | ${label.startsWith('P') ? '≤ 150' : '—'} |`);
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
await pgDatabase?.drop();
if (profile && existsSync(`${root}test/artifacts`)) console.log('CPU profile of P written to test/artifacts/*.cpuprofile');
process.exit(0);
