/**
 * `npm run crash [-- --cycles N] [--seed S]`: the crash-consistency run (test/crash/harness.ts),
 * 20 cycles by default. Prints one line per cycle and a summary, writes
 * test/artifacts/crash.json, and exits 1 when anything did not hold. The seed fixes the kill
 * moments and the traffic's choices (timing still varies from run to run); a run prints its seed.
 * --readme rewrites README's crash block with this run's figures (only when everything held).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../helpers/server-process.js';
import { runCrash } from './harness.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '20' }, seed: { type: 'string' }, readme: { type: 'boolean', default: false } } });
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
    `upstream token refreshes (U rotates the refresh token) during the traffic: ${report.upstreamRefreshes}; grants lost because U rotated one for P at the moment of a kill: ${report.upstreamRotationsLost}`,
    report.problems.length ? `FAILED: ${report.problems.length} problems:\n${report.problems.map((p) => `  - ${p}`).join('\n')}` : 'everything answered survived; nothing half-done was usable; audit verify passed after every kill and restart',
  ].join('\n'),
);

if (values.readme && !report.problems.length) {
  const lost = report.gatewayLost;
  const un = report.cycles.reduce((n, c) => n + c.unanswered, 0);
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'} (shared with other jobs), Node ${process.version}, ${report.engine}`;
  const block = [
    '<!-- crash:start -->',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine}: \`npm run crash -- --cycles ${cycles} --seed ${seed} --readme\`.`,
    '',
    '| tried | held | figures |',
    '|---|---|---|',
    `| ${report.cycles.length} SIGKILLs of \`mcp-consent-proxy serve\` at random moments (${report.cycles.filter((c) => c.gatewayOnly).length} of them amid gateway calls alone), each followed by a restart; answered before the kills: ${t.registrations} registrations, ${t.consents} consents, ${t.tokens} code redemptions, ${t.refreshes} refresh rotations, ${t.gateway} gateway calls, ${t.revocations} admin revocations; ${un} requests in flight at the kills (either outcome accepted, if consistent); ${report.upstreamRefreshes} upstream token refreshes (the upstream rotating its refresh token) | every answered consent, code, token, latest refresh token and revocation survived; the older refresh token tried after each restart was refused as reuse and ended its grant; nothing half-done was usable (no code or token without an active consent and grant); every answered decision had its audit row; \`audit verify\` passed after every kill and every restart, the checkpoint file never ahead of the chain (at most ${report.checkpointBehindMax} rows behind after a kill); no temp file left | restart (spawn → \`/readyz\` 200): median ${report.restartMedianMs} ms, max ${report.restartMaxMs} ms · gateway audit records lost per kill: median ${lost.mixed.median}, max ${lost.mixed.max} amid mixed traffic; median ${lost.gatewayOnly.median}, max ${lost.gatewayOnly.max} amid gateway calls alone; the oldest lost one answered ${report.gatewayLostMaxAgeMs} ms before its kill · grants lost to an upstream rotation at the moment of a kill: ${report.upstreamRotationsLost} |`,
    '<!-- crash:end -->',
  ].join('\n');
  const path = join(ROOT, 'README.md');
  const readme = readFileSync(path, 'utf8');
  if (!/<!-- crash:start -->[\s\S]*<!-- crash:end -->/.test(readme)) throw new Error('README.md has no crash block');
  writeFileSync(path, readme.replace(/<!-- crash:start -->[\s\S]*<!-- crash:end -->/, block));
  console.log('README.md crash block updated');
}
process.exitCode = report.problems.length ? 1 : 0;
