/**
 * Reads a CPU profile written by `npm run bench -- --profile` and prints the functions with the
 * most self time during one endpoint's runs: only the samples taken inside the windows that
 * run.ts wrote to test/artifacts/auth-windows.json (CLOCK_MONOTONIC µs, the time base of V8's
 * profiles on Linux) are counted, and `(idle)` is left out of the ranking.
 * Locations are line:column of the code as it ran: tsx compiles each TypeScript module of P to one
 * line, so P's functions show as `src/…ts:1:<column>` (map a column back by compiling the file
 * with esbuild's minifyWhitespace + keepNames, as tsx does).
 *   npx tsx test/bench/profile-top.ts <file.cpuprofile> <server label: SQLite | PostgreSQL | "bare oidc-provider"> <token | register> [top=5]
 * With `areas` instead of top: self time grouped by where it is spent (the database driver, the
 * provider, HTTP, express, koa, GC, …; AREAS below), in µs per request (the runs' request counts,
 * from the same windows file) — put the anchor's profile beside P's to see what P adds.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a function's self time counts (`key`: "name location", as in the ranking above); first match wins. */
function areaOf(key: string): string {
  const space = key.lastIndexOf(' ');
  const located = space > 0 && /:\d+:\d+$/.test(key.slice(space + 1));
  const [name, where] = located ? [key.slice(0, space), key.slice(space + 1)] : [key, ''];
  for (const [area, test] of AREAS) if (test(name, where)) return area;
  return where.startsWith('src/') ? "P's own code (src/, other)" : 'other (Node internals, small packages)';
}

const pkg = (...names: string[]) => (_: string, where: string) => names.some((n) => where.startsWith(`${n}/`));
const AREAS: [string, (name: string, where: string) => boolean][] = [
  ['database driver (better-sqlite3 / pg calls, src/db/)', (_, w) => w.startsWith('src/db/') || w.startsWith('pg/') || w.startsWith('pg-protocol/') || w.startsWith('better-sqlite3/')],
  ['oidc-provider', pkg('oidc-provider', 'jose', 'quick-lru', '@koa', 'eta', 'oidc-token-hash')],
  ['koa (inside oidc-provider)', pkg('koa', 'koa-compose', 'delegates', 'cookies', 'http-assert', 'statuses', 'koa-convert')],
  ['express, its router and body parsing', pkg('express', 'router', 'body-parser', 'raw-body', 'qs', 'type-is', 'on-finished', 'ee-first', 'finalhandler', 'path-to-regexp', 'content-type', 'media-typer', 'mime-types', 'iconv-lite', 'depd', 'http-errors', 'parseurl', 'send', 'accepts', 'negotiator', 'fresh', 'range-parser', 'vary', 'encodeurl', 'escape-html', 'bytes', 'unpipe')],
  ['rate limits and security headers (express-rate-limit, helmet)', pkg('express-rate-limit', 'helmet')],
  ['garbage collector', (n) => n === '(garbage collector)'],
  ['socket writes (writev)', (n) => n === 'writev' || n === 'writeUtf8String' || n === 'writeBuffer'],
  ['HTTP (node:_http_*, streams, net)', (_, w) => /^node:(_http_|internal\/streams|internal\/stream_base|net|internal\/http)/.test(w)],
  ['crypto (hashes, HMAC, random)', (_, w) => w.startsWith('node:internal/crypto')],
  ['async context (async_hooks, promises)', (n, w) => w.startsWith('node:internal/async_hooks') || w.startsWith('node:async_hooks') || n === 'runMicrotasks' || w.startsWith('node:internal/process/task_queues')],
  ['audit log (src/audit/, src/store/audit-*)', (_, w) => w.startsWith('src/audit/') || w.startsWith('src/store/audit')],
  ['oidc-provider adapter and stores (src/store/)', (_, w) => w.startsWith('src/store/')],
  ['(program)', (n) => n === '(program)'],
];

const [file, label, endpoint, topArg] = process.argv.slice(2);
if (!file || !label || (endpoint !== 'token' && endpoint !== 'register')) {
  console.error('usage: profile-top.ts <file.cpuprofile> <server label> <token|register> [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const windowsFile = fileURLToPath(new URL('../artifacts/auth-windows.json', import.meta.url));
const runs = (JSON.parse(readFileSync(windowsFile, 'utf8')) as Record<string, { token: [number, number][]; register: [number, number][]; requests?: { token: number; register: number } }>)[label];
const windows = runs?.[endpoint] ?? [];
const requests = runs?.requests?.[endpoint];
if (!windows.length) throw new Error(`no ${endpoint} windows for ${label} in ${windowsFile}`);
if (!windows.every(([a, b]) => a >= profile.startTime && b <= profile.endTime)) {
  throw new Error(`the windows are not inside the profile (${profile.startTime}–${profile.endTime} µs): another run's profile?`);
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let t = profile.startTime;
let inside = 0;
let idle = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  t += delta;
  if (!windows.some(([a, b]) => t >= a && t <= b)) return;
  const frame = (byId.get(id) as ProfileNode).callFrame;
  if (frame.functionName === '(idle)') {
    idle += delta;
    return;
  }
  inside += delta;
  const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\/.*?\/(src|test)\//, '$1/')}:${frame.lineNumber + 1}:${frame.columnNumber + 1}` : '';
  const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
  self.set(key, (self.get(key) ?? 0) + delta);
});
console.log(`${label} /${endpoint}: ${(inside / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle in ${windows.length} windows${requests ? `, ${requests} requests` : ''}`);
if (topArg === 'areas') {
  if (!requests) throw new Error(`no request counts in ${windowsFile}: profile again with this version of run.ts`);
  const areas = new Map<string, number>();
  for (const [key, us] of self) areas.set(areaOf(key), (areas.get(areaOf(key)) ?? 0) + us);
  console.log('| area | µs per request | % of busy |\n|---|---|---|');
  for (const [area, us] of [...areas.entries()].sort((a, b) => b[1] - a[1])) console.log(`| ${area} | ${(us / requests).toFixed(0)} | ${((100 * us) / inside).toFixed(1)} |`);
  console.log(`| total | ${(inside / requests).toFixed(0)} | 100 |`);
} else {
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 5));
  console.log('| function | self ms | % of busy |\n|---|---|---|');
  for (const [key, us] of top) console.log(`| \`${key}\` | ${(us / 1000).toFixed(0)} | ${((100 * us) / inside).toFixed(1)} |`);
}

