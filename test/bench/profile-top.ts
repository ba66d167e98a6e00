/**
 * Reads a CPU profile written by `npm run bench -- --profile` and prints the functions with the
 * most self time during one endpoint's runs: only the samples taken inside the windows that
 * run.ts wrote to test/artifacts/auth-windows.json (CLOCK_MONOTONIC µs, the time base of V8's
 * profiles on Linux) are counted, and `(idle)` is left out of the ranking.
 * Locations are line:column of the code as it ran: the bench runs its servers compiled
 * (test/bench/compile.ts, into test/artifacts/bench-build/), so P's functions show as
 * `src/….js:<line>:<column>` of that build. Profiles written before (servers through tsx, which
 * compiled each module to one line) show `src/…ts:1:<column>`; both are read the same way.
 *   npx tsx test/bench/profile-top.ts <file.cpuprofile> <server label: SQLite | PostgreSQL | "bare oidc-provider"> <token | register> [top=5]
 * With `areas` instead of top: self time grouped by where it is spent (the database driver, the
 * provider, HTTP, express, koa, GC, …; AREAS below; a package express and koa share counts for its
 * nearest caller that is neither), in µs per request (the runs' request counts, from the same
 * windows file) — put the anchor's profile beside P's to see what P adds.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** "name location" of a frame, locations relative to node_modules/ or the checkout. */
function keyOf(frame: ProfileNode['callFrame']): string {
  const where = frame.url ? `${frame.url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\/.*?\/test\/artifacts\/bench-build\//, '').replace(/^file:\/\/.*?\/(src|test)\//, '$1/')}:${frame.lineNumber + 1}:${frame.columnNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
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
/** Packages both express and koa use: their time goes to the caller (areaOfNode). */
const SHARED_AREA = 'packages express and koa share, called from neither';
const SHARED = [
  'type-is', 'mime-types', 'mime-db', 'media-typer', 'vary', 'on-finished', 'ee-first', 'content-type', 'statuses', 'http-errors', 'depd', 'setprototypeof',
  'toidentifier', 'inherits', 'bytes', 'raw-body', 'iconv-lite', 'safer-buffer', 'unpipe', 'destroy', 'encodeurl', 'escape-html', 'content-disposition',
  'negotiator', 'accepts', 'fresh', 'parseurl', 'debug', 'ms',
];
const AREAS: [string, (name: string, where: string) => boolean][] = [
  [SHARED_AREA, pkg(...SHARED)],
  ['database driver (better-sqlite3 / pg calls, src/db/)', (_, w) => w.startsWith('src/db/') || w.startsWith('pg/') || w.startsWith('pg-protocol/') || w.startsWith('better-sqlite3/')],
  ['oidc-provider', pkg('oidc-provider', 'jose', 'quick-lru', '@koa', 'eta', 'oidc-token-hash')],
  ['koa (inside oidc-provider)', pkg('koa', 'koa-compose', 'delegates', 'cookies', 'http-assert', 'koa-convert', 'only')],
  ['express, its router and body parsing', pkg('express', 'router', 'body-parser', 'qs', 'finalhandler', 'path-to-regexp', 'send', 'range-parser', 'proxy-addr', 'forwarded', 'ipaddr.js', 'cookie', 'cookie-signature', 'serve-static', 'merge-descriptors', 'utils-merge', 'methods', 'array-flatten')],
  ['rate limits and security headers (express-rate-limit, helmet)', pkg('express-rate-limit', 'helmet')],
  ['garbage collector', (n) => n === '(garbage collector)'],
  ['socket writes (writev)', (n) => n === 'writev' || n === 'writeUtf8String' || n === 'writeBuffer'],
  ['HTTP (node:_http_*, streams, net)', (_, w) => /^node:(_http_|internal\/streams|internal\/stream_base|net|internal\/http)/.test(w)],
  ['crypto (hashes, HMAC, random)', (_, w) => w.startsWith('node:internal/crypto')],
  ['promises, ticks and async context (async_hooks, AsyncLocalStorage)', (n, w) => w.startsWith('node:internal/async_hooks') || w.startsWith('node:async_hooks') || n === 'runMicrotasks' || w.startsWith('node:internal/process/task_queues')],
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
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const self = new Map<string, number>();
const byArea = new Map<string, number>();
const nodeArea = new Map<number, string>();
/** A node's area; a package both express and koa use counts for its nearest caller that is not one. */
function areaOfNode(id: number): string {
  const known = nodeArea.get(id);
  if (known !== undefined) return known;
  const area = areaOf(keyOf((byId.get(id) as ProfileNode).callFrame));
  const parent = parentOf.get(id);
  const resolved = area === SHARED_AREA && parent !== undefined ? areaOfNode(parent) : area;
  nodeArea.set(id, resolved);
  return resolved;
}
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
  const key = keyOf(frame);
  self.set(key, (self.get(key) ?? 0) + delta);
  const area = areaOfNode(id);
  byArea.set(area, (byArea.get(area) ?? 0) + delta);
});
console.log(`${label} /${endpoint}: ${(inside / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle in ${windows.length} windows${requests ? `, ${requests} requests` : ''}`);
if (topArg === 'areas') {
  if (!requests) throw new Error(`no request counts in ${windowsFile}: profile again with this version of run.ts`);
  console.log('| area | µs per request | % of busy |\n|---|---|---|');
  for (const [area, us] of [...byArea.entries()].sort((a, b) => b[1] - a[1])) console.log(`| ${area} | ${(us / requests).toFixed(0)} | ${((100 * us) / inside).toFixed(1)} |`);
  console.log(`| total | ${(inside / requests).toFixed(0)} | 100 |`);
} else {
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 5));
  console.log('| function | self ms | % of busy |\n|---|---|---|');
  for (const [key, us] of top) console.log(`| \`${key}\` | ${(us / 1000).toFixed(0)} | ${((100 * us) / inside).toFixed(1)} |`);
}

