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
 *   (r) with (e): a real replica — `serve` from the compiled build on (e)'s database, SECRET_KEY and
 *       PUBLIC_URL, started as docs/compose/replicas.yml starts one — after one run of each load;
 *       its RSS is issue 11's "RSS per replica" (the bench's P processes also host the fake
 *       upstream IdP and the test helpers);
 *   the anchor for the authorization server (issue 14): bare oidc-provider 9.13.3 with its in-memory
 *       adapter and P's configuration shape (bare-provider.ts); `/token` (refresh grant, rotating)
 *       and `/register` (DCR of a public client) are measured on it and on each P, servers
 *       alternating; targets P/bare ≥ 0.8 in req/s and ≤ 2 in p99. Beside it, not a target, the
 *       same bare provider with the smallest durable adapter (bare-sqlite-adapter.ts): what keeping
 *       tokens in a database costs the engine itself, and P against that.
 * Each server first gets a short warm-up of each load, not counted (1 s per gateway configuration;
 * 2 s of /token and of /register per authorization server).
 * Concurrency 10 and 100, ROUNDS rounds of SECONDS each; servers pinned to CPU 0 and the load
 * generator to CPU 1 when `taskset` exists. Prints medians (rates, latencies, and the CPU time the
 * server under test spent per request), ratios c/b and c/a, then the token endpoint (refresh
 * grant, rotating) and DCR rates and CPU per request, per P and for the anchors, and last a line `BENCH_RESULT {json}`
 * with every ratio measured (and the RSS of each server, MB). Loopback only; bounded time (~4 minutes, ~5.5 with (e) and (r)).
 * BENCH_ONLY=b,c (gateway configurations) or BENCH_ONLY=auth (the authorization server) runs a part;
 * BENCH_CONC=10 (with gateway configurations) one concurrency; BENCH_ROUNDS, BENCH_SECONDS.
 *   --readme   also rewrite README.md's Performance block
 *   --profile  run P (both engines), (b) and the bare oidc-provider with --cpu-prof (profiles in
 *              test/artifacts/, …/pg/, …/b/ and …/bare/), and write the
 *              CLOCK_MONOTONIC windows (µs) of each /token and /register run (and their
 *              request counts) to
 *              test/artifacts/auth-windows.json, to cut the profiles per endpoint
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync, mkdirSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { median, runLoad, type LoadResult } from './load.js';
import { dcrRun, refreshRun, type Chain } from './auth-server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { createServer } from 'node:net';
import { compileForBench } from './compile.js';
import { join } from 'node:path';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// BENCH_CONC=10: the gateway configurations at that concurrency only (with BENCH_ONLY=…, e.g. to profile one level).
const CONCURRENCY = process.env.BENCH_CONC ? [Number(process.env.BENCH_CONC)] : [10, 100];
if (process.env.BENCH_CONC && (!process.env.BENCH_ONLY || process.env.BENCH_ONLY === 'auth' || !(Number.isInteger(CONCURRENCY[0]) && (CONCURRENCY[0] as number) > 0))) {
  throw new Error('BENCH_CONC=<connections> goes with BENCH_ONLY=<gateway configurations>, e.g. BENCH_ONLY=c,e BENCH_CONC=10');
}
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

// Every server runs compiled, as the package ships (compile.ts says why: tsx adds ~40 MB of RSS).
const build = compileForBench(root);
const children: ChildProcess[] = [];
async function start(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Record<string, any>> {
  const args = [...nodeArgs, join(build, script.replace(/\.ts$/, '.js'))];
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
const pPg = pgDatabase
  ? await start('test/bench/p-server.ts', { TARGET: target, BENCH_TOKENS: '20', TEST_ENGINE: 'sqlite', P_DATABASE_URL: pgDatabase.url }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts/pg`] : [])
  : undefined;
const pgTokens = (pPg?.tokens ?? []) as { access: string; refresh: string; clientId: string }[];
// The anchor for /token and /register (issue 14): bare oidc-provider, in-memory, same configuration shape.
const bare = await start('test/bench/bare-provider.ts', { BENCH_TOKENS: '10' }, profile ? ['--cpu-prof', `--cpu-prof-dir=${root}test/artifacts/bare`] : []);
// A second anchor, not a target: the same bare provider keeping its models in SQLite (bare-sqlite-adapter.ts).
const bareSqlite = await start('test/bench/bare-provider.ts', { BENCH_TOKENS: '10', BARE_STORE: 'sqlite' });
/** Every ratio measured, printed at the end as one machine-readable line (`BENCH_RESULT {json}`). */
const result: Record<string, number> = {};
const printResult = () => console.log(`BENCH_RESULT ${JSON.stringify(Object.fromEntries(Object.entries(result).map(([k, v]) => [k, Math.round(v * 1000) / 1000])))}`);

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
/** `tools/list` calls to a gateway URL, each with the token `token(i)`. */
function gatewayLoad(href: string, connections: number, seconds: number, token: (i: number) => string): Promise<LoadResult> {
  const url = new URL(href);
  return runLoad({
    url: url.href,
    connections,
    durationMs: seconds * 1000,
    request: (worker, n) => ({
      method: 'POST',
      path: url.pathname,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token(worker + n)}` },
      body: body(n),
    }),
  });
}

async function load(config: Config, connections: number, seconds: number): Promise<Measured> {
  const cpuBefore = await cpuOf(config);
  const result = await gatewayLoad(urls[config], connections, seconds, (i) => tokenFor(config, i));
  return { ...result, cpuPerRequest: ((await cpuOf(config)) - cpuBefore) / Math.max(1, result.requests) };
}

// Warm-up: JIT, connection pools, SQLite page cache.
// BENCH_ONLY=b,c: only those gateway configurations (then exit); BENCH_ONLY=auth: only the /token and /register part.
const authOnly = process.env.BENCH_ONLY === 'auth';
const configs: Config[] = authOnly ? [] : ((process.env.BENCH_ONLY?.split(',') as Config[] | undefined) ?? (pPg ? ['a', 'b', 'c', 'd', 'e'] : ['a', 'b', 'c', 'd']));
for (const config of configs) await load(config, 10, 1);

/**
 * "No growth between rounds" (issue 14): the RSS of each P (and of the anchors in the
 * authorization-server rounds) in every round of each part, MB, read right after the server's
 * own last load of the round — not at the round's end, when it may have idled through the other
 * servers' runs and V8's memory reducer shrunk its heap. Growth that stops after the first round
 * is the heap sizing itself to the load; growth that goes on is memory kept.
 */
const rssRounds: Record<'gateway' | 'auth', Map<string, number[]>> = { gateway: new Map(), auth: new Map() };
async function noteRss(part: 'gateway' | 'auth', label: string, port: number, round: number): Promise<void> {
  const series = rssRounds[part].get(label) ?? [];
  series[round] = (await statsOf(port)).rss / 2 ** 20;
  rssRounds[part].set(label, series);
}
const P_SQLITE = 'P on SQLite';
const P_POSTGRES = 'P on PostgreSQL';
const RSS_KEYS: Record<string, string> = {
  [P_SQLITE]: 'p_sqlite',
  [P_POSTGRES]: 'p_postgres',
  'bare oidc-provider (anchor)': 'bare',
  'bare oidc-provider, SQLite adapter (second anchor)': 'bare_sqlite',
};
/** The table of RSS by round; each series' last growth (last round − the one before) also goes to BENCH_RESULT as `rss_growth_<part>_<process>_mb`. */
function rssRoundLines(): string[] {
  const rows: string[] = [];
  for (const [part, name] of [
    ['gateway', 'gateway'],
    ['auth', '`/token` and `/register`'],
  ] as const) {
    for (const [label, series] of rssRounds[part]) {
      const growth = series.length > 1 ? (series.at(-1) as number) - (series.at(-2) as number) : NaN;
      if (Number.isFinite(growth)) result[`rss_growth_${part}_${RSS_KEYS[label]}_mb`] = growth;
      const shown = Number.isFinite(growth) ? `${growth >= 0 ? '+' : '−'}${Math.abs(growth).toFixed(1)}` : '—';
      rows.push(`| ${label} | ${name} | ${series.map((mb) => mb.toFixed(1)).join(', ')} | ${shown} | ${label.startsWith('P') ? 'no growth' : '—'} |`);
    }
  }
  return rows.length ? ['', '| process | rounds of | RSS in each round, right after its own load, MB | growth in the last round, MB | target |', '|---|---|---|---|---|', ...rows] : [];
}

const results = new Map<string, Measured[]>();
for (let round = 0; round < ROUNDS && configs.length; round++) {
  for (const connections of CONCURRENCY) {
    const order = configs.map((_, i) => configs[(i + round) % configs.length] as Config);
    for (const config of order) {
      const r = await load(config, connections, SECONDS);
      const key = `${config}@${connections}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      process.stderr.write(
        `round ${round + 1} c=${connections} ${config}: ${Math.round(r.rps)} req/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors} server CPU ${r.cpuPerRequest.toFixed(1)} µs/req\n`,
      );
      if (config === 'c' || config === 'd') await noteRss('gateway', P_SQLITE, p.cpuPort as number, round);
      if (config === 'e') await noteRss('gateway', P_POSTGRES, pPg?.cpuPort as number, round);
    }
  }
}

const lines: string[] = [];
const med = (key: string, f: (r: Measured) => number) => median((results.get(key) ?? []).map(f));
if (configs.length) {
  lines.push('| config | concurrency | req/s (median) | p50 ms | p99 ms | server CPU µs/req | errors |', '|---|---|---|---|---|---|---|');
  for (const connections of CONCURRENCY) {
    for (const config of configs) {
      const key = `${config}@${connections}`;
      lines.push(
        `| ${labels[config]} | ${connections} | ${Math.round(med(key, (r) => r.rps))} | ${med(key, (r) => r.p50).toFixed(2)} | ${med(key, (r) => r.p99).toFixed(2)} | ${med(key, (r) => r.cpuPerRequest).toFixed(1)} | ${(results.get(key) ?? []).reduce((n, r) => n + r.errors, 0)} |`,
      );
    }
  }
  lines.push('', '| ratio (medians, same run) | c=10 | c=100 | target |', '|---|---|---|---|');
  /** The ratio of medians x/y at each concurrency, also recorded in BENCH_RESULT as `${name}_c10`, `${name}_c100`. */
  const ratio = (x: string, y: string, f: (r: Measured) => number, name: string) =>
    CONCURRENCY.map((c) => {
      const value = med(`${x}@${c}`, f) / med(`${y}@${c}`, f);
      if (Number.isFinite(value)) result[`${name}_c${c}`] = value;
      return value.toFixed(2);
    });
  lines.push(`| req/s c/b | ${ratio('c', 'b', (r) => r.rps, 'gateway_rps_c_over_b').join(' | ')} | ≥ 0.85 |`);
  lines.push(`| req/s c/a | ${ratio('c', 'a', (r) => r.rps, 'gateway_rps_c_over_a').join(' | ')} | — |`);
  lines.push(`| p50 c/b | ${ratio('c', 'b', (r) => r.p50, 'gateway_p50_c_over_b').join(' | ')} | ≤ 1.2 at c=10 |`);
  lines.push(`| CPU µs/req c − b (the gateway's own cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`b@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`);
  if (configs.includes('c') && configs.includes('e')) {
    lines.push(`| req/s e/c (PostgreSQL / SQLite) | ${ratio('e', 'c', (r) => r.rps, 'gateway_rps_pg_over_sqlite').join(' | ')} | ≥ 0.8 |`);
    lines.push(
      `| CPU µs/req e − c (PostgreSQL's extra cost in P) | ${CONCURRENCY.map((c) => (med(`e@${c}`, (r) => r.cpuPerRequest) - med(`c@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`,
    );
  }
  if (configs.includes('c') && configs.includes('d')) {
    lines.push(`| req/s c/d (with / without the GW-13 scrubber) | ${ratio('c', 'd', (r) => r.rps, 'gateway_rps_c_over_d').join(' | ')} | — |`);
    lines.push(
      `| CPU µs/req c − d (the GW-13 scrubber's cost) | ${CONCURRENCY.map((c) => (med(`c@${c}`, (r) => r.cpuPerRequest) - med(`d@${c}`, (r) => r.cpuPerRequest)).toFixed(1)).join(' | ')} | — |`,
    );
  }
}

if (process.env.BENCH_ONLY && !authOnly) {
  lines.push(...rssRoundLines());
  console.log(lines.join('\n'));
  printResult();
  stopAll();
  await pgDatabase?.drop();
  await new Promise((r) => setTimeout(r, 1000));
  process.exit(0);
}

const servers = [
  { label: 'SQLite', url: p.url as string, seeded: tokens, rss: [P_SQLITE, p.cpuPort as number] as [string, number] },
  ...(pPg ? [{ label: 'PostgreSQL', url: pPg.url as string, seeded: pgTokens, rss: [P_POSTGRES, pPg.cpuPort as number] as [string, number] }] : []),
];
// Token endpoint (refresh grant, each worker rotating its own chain) and DCR, on each P and on the
// bare oidc-provider anchor (bare-provider.ts), servers alternating (the order rotates each round).
// The anchor's in-memory LRU evicts its chains during a /register run: fresh ones are minted
// before each of its /token runs (not timed).
/** `rss`: the server's label in the RSS tables and its stats port */
type AuthRun = { label: string; url: string; bare: boolean; chains: Chain[]; refresh: Measured[]; dcr: Measured[]; rss: [string, number] };
const authRuns: AuthRun[] = [
  ...servers.map((server) => ({ ...server, bare: false, chains: server.seeded.map((t) => ({ clientId: t.clientId, rt: t.refresh })), refresh: [], dcr: [] })),
  { label: 'bare oidc-provider', url: bare.url as string, bare: true, chains: [], refresh: [], dcr: [], rss: ['bare oidc-provider (anchor)', bare.cpuPort as number] },
  {
    label: 'bare oidc-provider, SQLite adapter',
    url: bareSqlite.url as string,
    bare: true,
    chains: [],
    refresh: [],
    dcr: [],
    rss: ['bare oidc-provider, SQLite adapter (second anchor)', bareSqlite.cpuPort as number],
  },
];
const windows: Record<string, { token: [number, number][]; register: [number, number][]; requests: { token: number; register: number } }> = {};
const nowUs = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC, the time base of V8's CPU profiles
async function mintChains(run: AuthRun): Promise<void> {
  const minted = (await (await fetch(`${run.url}/bench/mint?n=10`, { method: 'POST' })).json()) as { clientId: string; refresh: string }[];
  run.chains = minted.map((t) => ({ clientId: t.clientId, rt: t.refresh }));
}
// Warm-up, not counted (as for the gateway above): 2 s of each load on each server — JIT, SQLite's
// page cache. Without it P's first round often ran 30–50 % below its later rounds.
for (const run of authRuns) {
  if (run.bare) await mintChains(run);
  await refreshRun(run.url, run.chains, 2);
  await dcrRun(run.url, 2);
}
for (let round = 0; round < ROUNDS; round++) {
  for (const run of authRuns.map((_, i) => authRuns[(i + round) % authRuns.length] as AuthRun)) {
    if (run.bare) await mintChains(run);
    const w = (windows[run.label] ??= { token: [], register: [], requests: { token: 0, register: 0 } });
    const cpuPort = run.rss[1];
    const withCpu = async (load: () => Promise<LoadResult>): Promise<Measured> => {
      const before = (await statsOf(cpuPort)).cpu;
      const result = await load();
      return { ...result, cpuPerRequest: ((await statsOf(cpuPort)).cpu - before) / Math.max(1, result.requests) };
    };
    let t0 = nowUs();
    run.refresh.push(await withCpu(() => refreshRun(run.url, run.chains, SECONDS)));
    w.token.push([t0, nowUs()]);
    w.requests.token += (run.refresh.at(-1) as LoadResult).requests;
    t0 = nowUs();
    run.dcr.push(await withCpu(() => dcrRun(run.url, SECONDS)));
    w.register.push([t0, nowUs()]);
    w.requests.register += (run.dcr.at(-1) as LoadResult).requests;
    await noteRss('auth', run.rss[0], run.rss[1], round);
    const last = (runs: Measured[]) => runs[runs.length - 1] as Measured;
    process.stderr.write(
      `round ${round + 1} ${run.label}: /token ${Math.round(last(run.refresh).rps)} req/s p99 ${last(run.refresh).p99.toFixed(2)} ms CPU ${Math.round(last(run.refresh).cpuPerRequest)} µs/req errors ${last(run.refresh).errors}; /register ${Math.round(last(run.dcr).rps)} req/s p99 ${last(run.dcr).p99.toFixed(2)} ms CPU ${Math.round(last(run.dcr).cpuPerRequest)} µs/req errors ${last(run.dcr).errors}\n`,
    );
  }
}
if (profile) writeFileSync(`${root}test/artifacts/auth-windows.json`, JSON.stringify(windows));
lines.push('', '| authorization server (c=10) | req/s (median) | p50 ms | p99 ms | CPU µs/request | errors |', '|---|---|---|---|---|---|');
for (const run of authRuns) {
  const anchor = run.url === bareSqlite.url ? 'a minimal SQLite adapter (second anchor: durable, one statement per adapter call)' : 'in-memory (anchor)';
  const on = run.bare ? ` — bare oidc-provider 9.13.3, ${anchor}` : pPg ? `, P on ${run.label}` : ', P';
  for (const [label, runs] of [
    [`\`POST /token\` refresh grant (rotating)${on}`, run.refresh],
    [`\`POST /register\` (DCR${run.bare ? '' : ', admission policy'})${on}`, run.dcr],
  ] as const) {
    lines.push(
      `| ${label} | ${Math.round(median(runs.map((r) => r.rps)))} | ${median(runs.map((r) => r.p50)).toFixed(2)} | ${median(runs.map((r) => r.p99)).toFixed(2)} | ${Math.round(median(runs.map((r) => r.cpuPerRequest)))} | ${runs.reduce((n, r) => n + r.errors, 0)} |`,
    );
  }
}
const rate = (runs: LoadResult[]) => median(runs.map((r) => r.rps));
const p99 = (runs: LoadResult[]) => median(runs.map((r) => r.p99));
const [sqliteRun, ...others] = authRuns as [AuthRun, ...AuthRun[]];
const bareRun = authRuns.find((r) => r.bare) as AuthRun;
const bareSqliteRun = authRuns.find((r) => r.url === bareSqlite.url) as AuthRun;
const pgRun = others.find((r) => !r.bare);
lines.push('', '| authorization server, P / bare oidc-provider (medians, same run) | ratio | target |', '|---|---|---|');
result.token_p_over_bare = rate(sqliteRun.refresh) / rate(bareRun.refresh);
result.register_p_over_bare = rate(sqliteRun.dcr) / rate(bareRun.dcr);
result.token_p99_p_over_bare = p99(sqliteRun.refresh) / p99(bareRun.refresh);
result.register_p99_p_over_bare = p99(sqliteRun.dcr) / p99(bareRun.dcr);
lines.push(`| \`POST /token\` req/s, P (SQLite) / bare | ${result.token_p_over_bare.toFixed(2)} | ≥ 0.8 |`);
lines.push(`| \`POST /register\` req/s, P (SQLite) / bare | ${result.register_p_over_bare.toFixed(2)} | ≥ 0.8 |`);
lines.push(`| \`POST /token\` p99, P (SQLite) / bare | ${result.token_p99_p_over_bare.toFixed(2)} | ≤ 2 |`);
lines.push(`| \`POST /register\` p99, P (SQLite) / bare | ${result.register_p99_p_over_bare.toFixed(2)} | ≤ 2 |`);
// What a database costs the engine itself: the second anchor against the first, and P against the second.
result.token_bare_sqlite_over_bare = rate(bareSqliteRun.refresh) / rate(bareRun.refresh);
result.register_bare_sqlite_over_bare = rate(bareSqliteRun.dcr) / rate(bareRun.dcr);
result.token_p_over_bare_sqlite = rate(sqliteRun.refresh) / rate(bareSqliteRun.refresh);
result.register_p_over_bare_sqlite = rate(sqliteRun.dcr) / rate(bareSqliteRun.dcr);
lines.push(`| \`POST /token\` req/s, bare with a SQLite adapter / bare in-memory | ${result.token_bare_sqlite_over_bare.toFixed(2)} | — |`);
lines.push(`| \`POST /register\` req/s, bare with a SQLite adapter / bare in-memory | ${result.register_bare_sqlite_over_bare.toFixed(2)} | — |`);
lines.push(`| \`POST /token\` req/s, P (SQLite) / bare with a SQLite adapter | ${result.token_p_over_bare_sqlite.toFixed(2)} | — |`);
lines.push(`| \`POST /register\` req/s, P (SQLite) / bare with a SQLite adapter | ${result.register_p_over_bare_sqlite.toFixed(2)} | — |`);
if (pgRun) {
  result.token_pg_over_bare = rate(pgRun.refresh) / rate(bareRun.refresh);
  result.register_pg_over_bare = rate(pgRun.dcr) / rate(bareRun.dcr);
  result.token_pg_over_sqlite = rate(pgRun.refresh) / rate(sqliteRun.refresh);
  result.register_pg_over_sqlite = rate(pgRun.dcr) / rate(sqliteRun.dcr);
  lines.push(`| \`POST /token\` req/s, P (PostgreSQL) / bare | ${result.token_pg_over_bare.toFixed(2)} | — |`);
  lines.push(`| \`POST /register\` req/s, P (PostgreSQL) / bare | ${result.register_pg_over_bare.toFixed(2)} | — |`);
  result.token_p99_pg_over_bare = p99(pgRun.refresh) / p99(bareRun.refresh);
  result.register_p99_pg_over_bare = p99(pgRun.dcr) / p99(bareRun.dcr);
  lines.push(`| \`POST /token\` p99, P (PostgreSQL) / bare | ${result.token_p99_pg_over_bare.toFixed(2)} | — |`);
  lines.push(`| \`POST /register\` p99, P (PostgreSQL) / bare | ${result.register_p99_pg_over_bare.toFixed(2)} | — |`);
  lines.push('', '| authorization server, PostgreSQL / SQLite (medians, same run) | ratio | target |', '|---|---|---|');
  lines.push(`| \`POST /token\` req/s | ${result.token_pg_over_sqlite.toFixed(2)} | ≥ 0.7 |`);
  lines.push(`| \`POST /register\` req/s | ${result.register_pg_over_sqlite.toFixed(2)} | ≥ 0.7 |`);
}
/**
 * (r) A replica as it runs (issue 11: "RSS per replica ≤ 150 MB under the benchmark load"): a real
 * `serve` from the compiled build — not the bench's P, whose process also hosts the fake upstream
 * IdP and the test helpers — on (e)'s database with (e)'s SECRET_KEY and PUBLIC_URL (replicas behind
 * one balancer share both), started as docs/compose/replicas.yml starts each replica
 * (NODE_OPTIONS=--max-semi-space-size=4). It takes one run of each load above: the gateway at every
 * concurrency with (e)'s tokens, (e)'s refresh chains, registrations. Its RSS is read from /proc at
 * the end; `rss` also records its rates beside the memory table.
 */
/** A free loopback port (listen on 0, close). */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

async function replicaRun(env: Record<string, string>): Promise<{ rss: number; rates: string[] } | undefined> {
  if (process.platform !== 'linux') return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-replica-'));
  const port = await freePort();
  const args = [join(build, 'src/cli/bin.js'), 'serve'];
  const childEnv = {
    ...process.env,
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_PATH: join(dir, 'unused.db'), // its directory is the data directory (the audit checkpoint file)
    NODE_OPTIONS: '--max-semi-space-size=4',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_REGISTER: '100000000/1m',
    RATE_LIMIT_TOKEN: '100000000/1m',
  };
  const child = hasTaskset
    ? spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: root, env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] })
    : spawn(process.execPath, args, { cwd: root, env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if ((await fetch(`${base}/healthz`).then((r) => r.status, () => 0)) === 200) break;
    if (i === 299) throw new Error('the replica did not answer /healthz within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const rates: string[] = [];
  for (const connections of CONCURRENCY) {
    const r = await gatewayLoad(`${base}/mcp`, connections, SECONDS, (i) => tokenFor('e', i));
    rates.push(`gateway c=${connections} ${Math.round(r.rps)} req/s (${r.errors} errors)`);
  }
  const chains = pgRun?.chains ?? [];
  if (chains.length) {
    const r = await refreshRun(base, chains, SECONDS);
    rates.push(`/token ${Math.round(r.rps)} req/s (${r.errors} errors)`);
  }
  const d = await dcrRun(base, SECONDS);
  rates.push(`/register ${Math.round(d.rps)} req/s (${d.errors} errors)`);
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  child.kill('SIGTERM');
  return { rss: kb / 1024, rates };
}
const replica = pPg?.replicaEnv ? await replicaRun(pPg.replicaEnv as Record<string, string>) : undefined;

// Memory: each P's resident set at the end of the run (after all the load above).
lines.push('', '| process | RSS at the end, MB | target |', '|---|---|---|');
for (const [label, port, key] of [
  ['P on SQLite ((c), (d))', p.cpuPort, 'rss_p_sqlite_mb'],
  ...(pPg ? [['P on PostgreSQL ((e))', pPg.cpuPort, 'rss_p_postgres_mb']] : []),
  ['(b) Node passthrough proxy', proxy.cpuPort, 'rss_b_mb'],
  ['bare oidc-provider (anchor)', bare.cpuPort, 'rss_bare_mb'],
  ['bare oidc-provider, SQLite adapter (second anchor)', bareSqlite.cpuPort, 'rss_bare_sqlite_mb'],
] as [string, number, string][]) {
  const rss = (await statsOf(port)).rss / 2 ** 20;
  result[key] = rss;
  lines.push(`| ${label} | ${rss.toFixed(1)} | ${label.startsWith('P') ? '≤ 150' : '—'} |`);
}
if (replica) {
  result.rss_replica_postgres_mb = replica.rss;
  lines.push(`| (r) a replica: \`serve\` on (e)'s PostgreSQL database, \`NODE_OPTIONS=--max-semi-space-size=4\` as in docs/compose/replicas.yml, after ${replica.rates.join(', ')} | ${replica.rss.toFixed(1)} | ≤ 150 |`);
}
lines.push(...rssRoundLines());

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
if (profile && existsSync(`${root}test/artifacts`)) {
  console.log('CPU profiles written: P test/artifacts/*.cpuprofile (on PostgreSQL: test/artifacts/pg/), (b) test/artifacts/b/, bare oidc-provider test/artifacts/bare/; time windows of the /token and /register runs: test/artifacts/auth-windows.json');
}
printResult();
process.exit(0);
