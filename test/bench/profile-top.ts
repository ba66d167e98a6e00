/**
 * Reads a CPU profile written by `npm run bench -- --profile` and prints the functions with the
 * most self time during one endpoint's runs: only the samples taken inside the windows that
 * run.ts wrote to test/artifacts/auth-windows.json (CLOCK_MONOTONIC µs, the time base of V8's
 * profiles on Linux) are counted, and `(idle)` is left out of the ranking.
 * Locations are line:column of the code as it ran: tsx compiles each TypeScript module of P to one
 * line, so P's functions show as `src/…ts:1:<column>` (map a column back by compiling the file
 * with esbuild's minifyWhitespace + keepNames, as tsx does).
 *   npx tsx test/bench/profile-top.ts <file.cpuprofile> <server label: SQLite | PostgreSQL | "bare oidc-provider"> <token | register> [top=5]
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

const [file, label, endpoint, topArg] = process.argv.slice(2);
if (!file || !label || (endpoint !== 'token' && endpoint !== 'register')) {
  console.error('usage: profile-top.ts <file.cpuprofile> <server label> <token|register> [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const windowsFile = fileURLToPath(new URL('../artifacts/auth-windows.json', import.meta.url));
const windows = (JSON.parse(readFileSync(windowsFile, 'utf8')) as Record<string, Record<string, [number, number][]>>)[label]?.[endpoint] ?? [];
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
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 5));
console.log(`${label} /${endpoint}: ${(inside / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle in ${windows.length} windows`);
console.log('| function | self ms | % of busy |\n|---|---|---|');
for (const [key, us] of top) console.log(`| \`${key}\` | ${(us / 1000).toFixed(0)} | ${((100 * us) / inside).toFixed(1)} |`);
