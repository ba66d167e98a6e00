/**
 * `npm run fuzz`: every fuzz surface (test/fuzz/*.test.ts) with many cases, one printed seed.
 *
 *   npm run fuzz                                   5,600 cases per property (9 properties: 50,400)
 *   npm run fuzz -- --runs=1000                    fewer
 *   npm run fuzz -- --seed=123                     replay a whole run
 *   npm run fuzz -- --seed=123 --path=4:1:0 --file=test/fuzz/token.test.ts --name='POST /token'
 *                                                  replay one shrunk case (the failure prints this)
 *
 * Sets FUZZ_RUNS, FUZZ_SEED, FUZZ_PATH (read by test/helpers/fuzz.ts only) and FUZZ_REPORT, runs
 * vitest on the files, then prints cases and time per surface as a Markdown table (README
 * "Reliability") from the report each property appends to.
 */
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5600' },
    seed: { type: 'string' },
    path: { type: 'string' },
    file: { type: 'string' },
    name: { type: 'string' },
  },
});
const seed = values.seed ?? String(randomInt(2 ** 31 - 1));
if (values.path && (!values.file || !values.name)) {
  console.error('--path replays one property: give --file and --name too');
  process.exit(2);
}
mkdirSync('test/artifacts', { recursive: true });
const report = 'test/artifacts/fuzz-report.ndjson';
if (existsSync(report)) rmSync(report);

console.log(`fuzz: ${values.runs} cases per property, seed ${seed}${values.path ? `, path ${values.path}` : ''}`);
const started = Date.now();
const args = ['vitest', 'run', '--config', 'test/vitest.config.ts', values.file ?? 'test/fuzz/'];
if (values.name) args.push('-t', values.name);
const result = spawnSync('npx', args, {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_RUNS: values.runs, FUZZ_SEED: seed, FUZZ_PATH: values.path ?? '', FUZZ_REPORT: report },
});
const seconds = Math.round((Date.now() - started) / 1000);

const lines = existsSync(report)
  ? readFileSync(report, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { file: string; name: string; cases: number; ms: number; failed: boolean; statuses: Record<string, number> })
  : [];
const total = lines.reduce((n, l) => n + l.cases, 0);
console.log(`\n| surface | cases | time | held | statuses |\n|---|---:|---:|---|---|`);
for (const l of lines) {
  const statuses = Object.entries(l.statuses)
    .map(([s, n]) => `${s}×${n}`)
    .join(' ');
  console.log(`| ${l.name} (\`${l.file}\`) | ${l.cases.toLocaleString('en')} | ${(l.ms / 1000).toFixed(0)} s | ${l.failed ? 'FAILED' : 'yes'} | ${statuses} |`);
}
console.log(`\nfuzz: ${total.toLocaleString('en')} cases in ${seconds} s (wall clock), seed ${seed}; replay the run with: npm run fuzz -- --runs=${values.runs} --seed=${seed}`);
process.exit(result.status ?? 1);
