/**
 * `npm run crash [-- --cycles N] [--seed S]`: the crash-consistency run (test/crash/harness.ts),
 * 20 cycles by default. Prints one line per cycle and a summary, writes
 * test/artifacts/crash.json, and exits 1 when anything did not hold. The seed fixes the kill
 * moments and the traffic's choices (timing still varies from run to run); a run prints its seed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../helpers/server-process.js';
import { runCrash } from './harness.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '20' }, seed: { type: 'string' } } });
const cycles = Number(values.cycles);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isSafeInteger(cycles) || cycles < 1 || !Number.isSafeInteger(seed)) {
  console.error('usage: npm run crash -- [--cycles N] [--seed S]');
  process.exit(2);
}
console.log(`crash consistency: ${cycles} cycles, seed ${seed} (reproduce: npm run crash -- --cycles ${cycles} --seed ${seed})`);
const started = Date.now();
const report = await runCrash({ cycles, seed, log: (line) => console.log(line) });
mkdirSync(join(ROOT, 'test/artifacts'), { recursive: true });
writeFileSync(join(ROOT, 'test/artifacts/crash.json'), `${JSON.stringify(report, null, 2)}\n`);
const t = report.totals;
console.log(
  [
    '',
    `engine ${report.engine}; ${report.cycles.length} kill -9 cycles in ${Math.round((Date.now() - started) / 1000)} s`,
    `answered before the kills: ${t.registrations} registrations, ${t.consents} consents, ${t.tokens} code redemptions, ${t.refreshes} refreshes, ${t.gateway} gateway calls, ${t.revocations} admin revocations`,
    `restart (spawn → /readyz 200): median ${report.restartMedianMs} ms, max ${report.restartMaxMs} ms`,
    `gateway audit records lost per crash: amid mixed traffic median ${report.gatewayLost.mixed.median}, max ${report.gatewayLost.mixed.max}; amid gateway calls alone median ${report.gatewayLost.gatewayOnly.median}, max ${report.gatewayLost.gatewayOnly.max}; the oldest lost record was answered ${report.gatewayLostMaxAgeMs} ms before the kill`,
    `checkpoint file behind the chain after a kill: at most ${report.checkpointBehindMax} rows (never ahead)`,
    report.problems.length ? `FAILED: ${report.problems.length} problems:\n${report.problems.map((p) => `  - ${p}`).join('\n')}` : 'everything answered survived; nothing half-done was usable; audit verify passed after every kill and restart',
  ].join('\n'),
);
process.exitCode = report.problems.length ? 1 : 0;
