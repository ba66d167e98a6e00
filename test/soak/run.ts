/**
 * `npm run soak -- --minutes N [--interval S] [--readme]` (issue 13 §4): a `serve` process under
 * the steady mixed traffic of test/soak/load.ts for N minutes, sampled every S seconds (10)
 * through the test-only stats channel (test/helpers/serve-with-stats.ts: RSS, heap after a full
 * GC, descriptors, sockets, event-loop delay p99) and the database's size on disk
 * (test/helpers/crash-probe.ts). Writes test/artifacts/soak.csv and test/artifacts/soak.svg.
 * Passes when, after the warm-up (the first 20 % of the run), RSS and heap grow by less than
 * 10 % (mean of the last three samples over the mean of the first three after the warm-up),
 * descriptors do not grow (test/soak/verdict.ts: other descriptors not at all, sockets not beyond
 * the connections that come and go with the load), no
 * request got an unexpected answer, and the process stops cleanly with its audit chain intact.
 * --readme also copies both files to docs/reliability/ and rewrites README's soak block.
 * --heap takes a V8 heap snapshot of P at the end of the warm-up and at the end (into
 * test/artifacts/) and prints what grew between them (test/soak/heap-diff.ts).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startCast } from '../helpers/cast.js';
import { freePort } from '../helpers/app.js';
import { openProbe } from '../helpers/crash-probe.js';
import { adminSignIn } from '../helpers/actors.js';
import { ENGINE, ROOT, runCli, startServerProcess } from '../helpers/server-process.js';
import { SoakLoad, type LoadCounts } from './load.js';
import { CHECKPOINT_TEMP, evaluate, type Sample } from './verdict.js';
import { soakPicture } from './svg.js';
import { heapDiff } from './heap-diff.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, interval: { type: 'string', default: '10' }, readme: { type: 'boolean', default: false }, heap: { type: 'boolean', default: false } } });
const minutes = Number(values.minutes);
const intervalS = Number(values.interval);
if (!(minutes > 0) || !(intervalS > 0)) {
  console.error('usage: npm run soak -- --minutes N [--interval S] [--readme]');
  process.exit(2);
}

const cast = await startCast({ prefix: 'mcp-soak-', adminSubjects: 'soak-admin' });
const statsPort = await freePort();
const env = { ...cast.env, TEST_STATS_PORT: String(statsPort) };
const server = await startServerProcess(env, { nodeArgs: ['--expose-gc', '--import', 'tsx'], entry: [join(ROOT, 'test/helpers/serve-with-stats.ts')] });
const probe = await openProbe(env);
// The machine's own noise: an idle Node process measuring its event-loop delay the same way,
// at the same time. On a shared machine most of P's delay can be other processes' doing.
const floorPort = await freePort();
const floorScript = `const h=require('node:perf_hooks').monitorEventLoopDelay({resolution:10});h.enable();require('node:http').createServer((q,r)=>{const v=Math.max(0,h.percentile(99)/1e6-10);h.reset();r.end(JSON.stringify({p99:Math.round(v*100)/100}))}).listen(${floorPort},'127.0.0.1')`;
const floor = spawn(process.execPath, ['-e', floorScript], { stdio: 'ignore' });
const load = new SoakLoad(server.url, 40);
await adminSignIn(server.url, load.admins, 'soak-admin');
await load.seed();
console.log(`soak: ${minutes} min, a sample every ${intervalS} s, engine ${ENGINE}, P pid ${server.child.pid} (started in ${Math.round(server.readyMs)} ms)`);

const samples: Sample[] = [];
const fileSets: string[][] = [];
const started = performance.now();
async function takeSample(): Promise<void> {
  const { files, ...stats } = (await (await fetch(`http://127.0.0.1:${statsPort}/`)).json()) as Omit<Sample, 't' | 'dbBytes' | 'eldFloorP99Ms' | keyof LoadCounts> & { files: string[] };
  const t = (performance.now() - started) / 1000;
  const idle = (await (await fetch(`http://127.0.0.1:${floorPort}/`)).json()) as { p99: number };
  const s: Sample = { t, ...stats, eldFloorP99Ms: idle.p99, dbBytes: await probe.bytes(), ...load.counts };
  // Which descriptors (other than sockets and the checkpoint writer's temp file) opened or closed
  // since the last sample: a count that grows is named here, so a failing verdict says what stayed open.
  const previous = fileSets.at(-1);
  fileSets.push(files.filter((f) => !CHECKPOINT_TEMP.test(f)));
  if (previous) {
    const now = fileSets.at(-1) as string[];
    const opened = now.filter((f) => !previous.includes(f));
    const closed = previous.filter((f) => !now.includes(f));
    if (opened.length || closed.length) console.log(`         descriptors${opened.length ? ` opened: ${opened.join(', ')}` : ''}${closed.length ? ` closed: ${closed.join(', ')}` : ''}`);
  }
  samples.push(s);
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  console.log(
    `${(t / 60).toFixed(2).padStart(6)} min  rss ${mb(s.rss)} MB  heap ${mb(s.heapAfterGc)} MB  fds ${s.fds}  sockets ${s.sockets}  eld p99 ${s.eldP99Ms} ms (idle process ${s.eldFloorP99Ms} ms)  db ${mb(s.dbBytes)} MB  ` +
      `| flows ${s.authorizations} gateway ${s.gateway} refresh ${s.refreshes} refused ${s.refused} revoked ${s.revocations} errors ${s.errors}`,
  );
}

const snapshot = async (n: number) => {
  const file = join(ROOT, `test/artifacts/soak-${n}.heapsnapshot`);
  mkdirSync(join(ROOT, 'test/artifacts'), { recursive: true });
  await (await fetch(`http://127.0.0.1:${statsPort}/heapsnapshot?to=${encodeURIComponent(file)}`)).json();
  return file;
};
const running = load.run();
await takeSample();
let firstSnapshot: string | undefined;
for (let i = 1; i * intervalS <= minutes * 60 + 1e-9; i++) {
  const due = started + i * intervalS * 1000;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  await takeSample();
  if (values.heap && !firstSnapshot && i * intervalS >= minutes * 60 * 0.2) firstSnapshot = await snapshot(1);
}
if (values.heap && firstSnapshot) console.log(`what grew on P's heap after the warm-up (bytes, objects, type:constructor):\n${heapDiff(firstSnapshot, await snapshot(2), 25).join('\n')}`);
load.stopped = true;
await running;
const exitCode = await server.stop();
floor.kill();
await probe.close();
const verified = await runCli(env, ['audit', 'verify']);
await cast.close();
rmSync(cast.dir, { recursive: true, force: true });

const verdict = evaluate(samples, { warmupFraction: 0.2, maxGrowth: 0.1 });
const problems = [...verdict.problems];
if (load.counts.errors) problems.push(`${load.counts.errors} requests got an unexpected answer: ${load.errors.slice(0, 5).join('; ')}`);
if (exitCode !== 0) problems.push(`P exited ${exitCode} after SIGTERM`);
if (verified.code !== 0) problems.push(`audit verify after the soak: ${verified.stderr || verified.stdout}`);

const artifacts = join(ROOT, 'test/artifacts');
mkdirSync(artifacts, { recursive: true });
const columns = ['t', 'rss', 'heapUsed', 'heapAfterGc', 'fds', 'sockets', 'checkpointTemps', 'eldP99Ms', 'eldMaxMs', 'eldMeanMs', 'eldFloorP99Ms', 'cpuUs', 'dbBytes', 'authorizations', 'gateway', 'refreshes', 'refused', 'revocations', 'errors'] as const;
const csv = [columns.join(','), ...samples.map((s) => columns.map((c) => (c === 't' ? s.t.toFixed(1) : String(s[c]))).join(','))].join('\n');
writeFileSync(join(artifacts, 'soak.csv'), `${csv}\n`);
const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'} (shared), Node ${process.version}, ${ENGINE}`;
const svg = soakPicture(samples, verdict, { minutes, intervalS, machine, date: new Date().toISOString().slice(0, 10) });
writeFileSync(join(artifacts, 'soak.svg'), svg);

const last = samples.at(-1) as Sample;
const cpuPct = ((last.cpuUs - (samples[0]?.cpuUs ?? 0)) / 1e6 / Math.max(1e-9, last.t - (samples[0]?.t ?? 0))) * 100;
const summary = [
  `soak ${minutes} min (${machine}): ${last.authorizations} authorizations, ${last.gateway} gateway calls, ${last.refreshes} refreshes, ${last.refused} refusals, ${last.revocations} admin revocations, ${last.errors} errors`,
  `after the warm-up (${Math.round(verdict.warmupS)} s): RSS ${verdict.rssFirstMb.toFixed(1)} → ${verdict.rssLastMb.toFixed(1)} MB (${verdict.rssGrowthPct.toFixed(1)} %), heap after GC ${verdict.heapFirstMb.toFixed(1)} → ${verdict.heapLastMb.toFixed(1)} MB (${verdict.heapGrowthPct.toFixed(1)} %), descriptors other than sockets ${verdict.fdsFirst} → ${verdict.fdsLast} (max of the first third → median of the last), sockets ${verdict.socketsFirst} → ${verdict.socketsLast} (max of the first third → median of the last)`,
  `event-loop delay p99 (per ${intervalS} s window, after the warm-up): median ${verdict.eldP99Median.toFixed(1)} ms, max ${verdict.eldP99Max.toFixed(1)} ms (an idle Node process on the same machine at the same time: median ${verdict.eldFloorP99Median.toFixed(1)} ms); P's CPU ${cpuPct.toFixed(0)} % of one core on average; database ${((samples[0]?.dbBytes ?? 0) / 2 ** 20).toFixed(1)} → ${(last.dbBytes / 2 ** 20).toFixed(1)} MB (${(((last.dbBytes - (samples[0]?.dbBytes ?? 0)) / 2 ** 20) / (last.t / 60)).toFixed(1)} MB a minute)`,
  `wrote test/artifacts/soak.csv and test/artifacts/soak.svg`,
  problems.length ? `FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}` : 'passed: memory and descriptors flat after the warm-up, no unexpected answer, clean stop, audit chain intact',
];
console.log(summary.join('\n'));

if (values.readme && !problems.length) {
  const docs = join(ROOT, 'docs/reliability');
  mkdirSync(docs, { recursive: true });
  copyFileSync(join(artifacts, 'soak.svg'), join(docs, 'soak.svg'));
  copyFileSync(join(artifacts, 'soak.csv'), join(docs, 'soak.csv'));
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  const first = samples[0] as Sample;
  const block = [
    '<!-- soak:start -->',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine}, shared with other jobs: \`npm run soak -- --minutes ${minutes} --readme\` (a sample every ${intervalS} s; warm-up: the first ${Math.round(verdict.warmupS)} s).`,
    '',
    '| tried | held | figures |',
    '|---|---|---|',
    `| ${minutes} minutes of mixed traffic against one \`serve\` process: ${last.authorizations} authorizations, ${last.gateway} gateway calls (tool calls, streamed countdowns, session ends), ${last.refreshes} refresh rotations, ${last.refused} refused requests (no token, reused refresh tokens), ${last.revocations} admin revocations; 40 grants live throughout | after the warm-up RSS ${verdict.rssGrowthPct >= 0 ? '+' : ''}${verdict.rssGrowthPct.toFixed(1)} % and heap ${verdict.heapGrowthPct >= 0 ? '+' : ''}${verdict.heapGrowthPct.toFixed(1)} % (limit: < 10 %); descriptors other than sockets ${verdict.fdsFirst} → ${verdict.fdsLast}, sockets ${verdict.socketsFirst} → ${verdict.socketsLast} (flat); ${last.errors} unexpected answers; SIGTERM exit 0; \`audit verify\` passed | RSS ${verdict.rssFirstMb.toFixed(1)} → ${verdict.rssLastMb.toFixed(1)} MB, heap after GC ${verdict.heapFirstMb.toFixed(1)} → ${verdict.heapLastMb.toFixed(1)} MB · event-loop delay p99 per window: median ${verdict.eldP99Median.toFixed(1)} ms, max ${verdict.eldP99Max.toFixed(1)} ms (an idle Node process on the machine at the same time: median ${verdict.eldFloorP99Median.toFixed(1)} ms) · P's CPU ${cpuPct.toFixed(0)} % of one core · database ${mb(first.dbBytes)} → ${mb(last.dbBytes)} MB (${(((last.dbBytes - first.dbBytes) / 2 ** 20) / (last.t / 60)).toFixed(1)} MB a minute, mostly audit rows) |`,
    '<!-- soak:end -->',
  ].join('\n');
  if (!/<!-- soak:start -->[\s\S]*<!-- soak:end -->/.test(readme)) throw new Error('README.md has no soak block');
  writeFileSync(join(ROOT, 'README.md'), readme.replace(/<!-- soak:start -->[\s\S]*<!-- soak:end -->/, block));
  console.log('README.md soak block and docs/reliability/soak.{svg,csv} updated');
}
process.exitCode = problems.length ? 1 : 0;
