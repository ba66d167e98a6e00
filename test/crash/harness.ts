/**
 * Crash consistency (issue 13 §2; DESIGN §3 "decisions are committed before the response is
 * sent; gateway request records may be group-committed", §8 "a replica killed with SIGKILL loses
 * nothing that was answered", §9 the checkpoint file). One P process (`mcp-consent-proxy serve`,
 * fixed data directory and SECRET_KEY) under mixed traffic (test/crash/traffic.ts) is killed
 * with SIGKILL at a random moment, then:
 *   1. `audit verify` on the state the kill left: the chain verifies and the checkpoint file is at
 *      or behind its head — never ahead (DESIGN §9);
 *   2. P is started again; the time until /readyz answers 200 is the restart time;
 *   3. `audit verify` again, then the checks of test/crash/checks.ts.
 * Repeated for `cycles` cycles on the same data; a final graceful stop and verify close the run.
 * U and R live in this process and survive every kill. Engine: SQLite, or PostgreSQL when
 * DATABASE_URL is set (test/helpers/server-process.ts).
 */
import { readdirSync, rmSync } from 'node:fs';
import { startCast } from '../helpers/cast.js';
import { ENGINE, runCli, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { openProbe } from '../helpers/crash-probe.js';
import { Browser, adminSignIn } from '../helpers/actors.js';
import { checkAfterRestart } from './checks.js';
import { Traffic, type World } from './traffic.js';
import { median, prng, ROTATING, ROTATING_TTL_S, sleep, zeroCounts, type Counts } from './model.js';

export interface CrashOptions {
  cycles: number;
  seed: number;
  /** the kill comes this long after the cycle's traffic started: uniform in [min, max] ms */
  minKillMs?: number;
  maxKillMs?: number;
  /** the admin revokes eagerly above this many live grants */
  maxLive?: number;
  log?: (line: string) => void;
}

export interface CycleReport {
  cycle: number;
  killAfterMs: number;
  /** the kill came amid gateway calls alone (no decision flushed the queue early) */
  gatewayOnly: boolean;
  answered: Counts;
  /** requests in flight at the kill (their outcome was left to the checks) */
  unanswered: number;
  restartMs: number;
  /** rows the checkpoint file was behind the chain's head right after the kill */
  checkpointBehind: number;
  gatewayLost: number;
  gatewayLostMaxAgeMs: number;
  /** grants ended because U rotated a refresh token for P at the kill (checks.ts lostUpstreamRotation) */
  upstreamRotationsLost: number;
  /** U refreshes (rotations) during the cycle's traffic */
  upstreamRefreshes: number;
  grantsChecked: number;
  revokedChecked: number;
  codesRedeemed: number;
  /** checkpoint temp files of killed processes left in the data directory after the restart */
  tempFiles: number;
}

export interface CrashReport {
  engine: string;
  seed: number;
  cycles: CycleReport[];
  problems: string[];
  restartMedianMs: number;
  restartMaxMs: number;
  /** gateway records lost per crash amid mixed traffic, and amid gateway calls alone */
  gatewayLost: { mixed: { median: number; max: number }; gatewayOnly: { median: number; max: number } };
  gatewayLostMaxAgeMs: number;
  checkpointBehindMax: number;
  upstreamRefreshes: number;
  upstreamRotationsLost: number;
  totals: Counts;
}

/** How long the gateway-only cycles run gateway calls alone before the kill (≫ GROUP_COMMIT_MS). */
const GATEWAY_ONLY_MS = 800;

interface Verified {
  problem: string | undefined;
  behind: number;
}

/** `mcp-consent-proxy audit verify --json`: ok, and the checkpoint file at or behind the head. */
async function verify(env: Record<string, string>, when: string): Promise<Verified> {
  const r = await runCli(env, ['audit', 'verify', '--json']);
  let result: { ok: boolean; problem?: string; tipSeq: number; checkpointFile: { status: string; seq?: number } | null };
  try {
    result = JSON.parse(r.stdout) as typeof result;
  } catch {
    return { problem: `audit verify ${when} printed no result (exit ${r.code}): ${r.stderr.slice(0, 500)}`, behind: 0 };
  }
  if (!result.ok || r.code !== 0) return { problem: `audit verify ${when} failed (exit ${r.code}): ${result.problem ?? r.stderr}`, behind: 0 };
  const cp = result.checkpointFile;
  if (cp && cp.status !== 'matches') return { problem: `audit verify ${when}: checkpoint file ${cp.status}`, behind: 0 };
  return { problem: undefined, behind: cp?.seq === undefined ? 0 : result.tipSeq - cp.seq };
}

/** Checkpoint temp files left in the data directory by processes that are gone (not the running `pid`'s). */
const staleTempFiles = (dir: string, pid: number | undefined) => readdirSync(dir).filter((f) => f.endsWith('.tmp') && !f.includes(`.${pid}.`)).length;

function addCounts(total: Counts, c: Counts): void {
  for (const k of Object.keys(total) as (keyof Counts)[]) total[k] += c[k];
}

export async function runCrash(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => undefined);
  const random = prng(o.seed);
  const cast = await startCast({ prefix: 'mcp-crash-', adminSubjects: 'crash-admin', upstreamTokenTtlFor: (sub) => (sub.startsWith(ROTATING) ? ROTATING_TTL_S : undefined) });
  const problems: string[] = [];
  const cycles: CycleReport[] = [];
  const totals = zeroCounts();
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(cast.env);
    const world: World = { grants: [], pendingCodes: [], consentsWithoutCode: [], clientsWithoutConsent: [], admin: new Browser('admin'), nextN: 0 };
    await adminSignIn(server.url, world.admin, 'crash-admin');
    for (let cycle = 1; cycle <= o.cycles; cycle++) {
      const before = await openProbe(cast.env);
      const startSeq = await before.tip();
      await before.close();
      const counts = zeroCounts();
      const cycleEpoch = Date.now();
      const traffic = new Traffic(world, { p: server.url, cycle, random, maxLive: o.maxLive ?? 24 }, counts);
      const running = traffic.run();
      const killAfterMs = Math.round((o.minKillMs ?? 300) + random() * ((o.maxKillMs ?? 2500) - (o.minKillMs ?? 300)));
      // Every other cycle ends with gateway calls alone (from GATEWAY_ONLY_MS before the kill):
      // the group-commit window at its widest. The others are killed amid mixed traffic.
      const gatewayOnly = cycle % 2 === 0;
      if (gatewayOnly) {
        await sleep(Math.max(0, killAfterMs - GATEWAY_ONLY_MS));
        traffic.gatewayOnly = true;
        await sleep(Math.min(killAfterMs, GATEWAY_ONLY_MS));
      } else await sleep(killAfterMs);
      traffic.killed = true;
      traffic.stopped = true;
      const killAt = performance.now();
      const killEpoch = Date.now();
      await server.kill();
      await running;
      problems.push(...traffic.problems);
      const unanswered = world.grants.filter((g) => g.inflight).length + world.pendingCodes.filter((c) => c.redeemSent).length;

      const afterKill = await verify(cast.env, `after the kill of cycle ${cycle}`);
      server = await startServerProcess(cast.env);
      const afterRestart = await verify(cast.env, `after the restart of cycle ${cycle}`);
      for (const v of [afterKill, afterRestart]) if (v.problem) problems.push(v.problem);

      const probe = await openProbe(cast.env);
      const checked = await checkAfterRestart({ p: server.url, cycle, world, probe, startSeq, decisions: traffic.decisions, gateway: traffic.gateway, killAt, killEpoch, upstream: cast.upstream, recheckRevoked: 20 }).finally(() => probe.close());
      problems.push(...checked.problems);
      addCounts(totals, counts);
      const report: CycleReport = {
        cycle,
        killAfterMs,
        gatewayOnly,
        answered: counts,
        unanswered,
        restartMs: Math.round(server.readyMs),
        checkpointBehind: afterKill.behind,
        gatewayLost: checked.gatewayLost,
        gatewayLostMaxAgeMs: Math.round(checked.gatewayLostMaxAgeMs * 10) / 10,
        upstreamRotationsLost: checked.upstreamRotationsLost,
        upstreamRefreshes: cast.upstream.tokenRequests.filter((r) => r.grant_type === 'refresh_token' && r.at >= cycleEpoch && r.at <= killEpoch).length,
        grantsChecked: checked.grantsChecked,
        revokedChecked: checked.revokedChecked,
        codesRedeemed: checked.codesRedeemed,
        tempFiles: staleTempFiles(cast.dir, server.child.pid),
      };
      cycles.push(report);
      if (report.tempFiles) problems.push(`cycle ${cycle}: ${report.tempFiles} checkpoint temp files of killed processes are left in the data directory after the restart`);
      log(
        `cycle ${cycle}: killed after ${killAfterMs} ms${gatewayOnly ? ' of which the last ' + Math.min(killAfterMs, GATEWAY_ONLY_MS) + ' ms gateway calls only' : ''} (answered ${JSON.stringify(counts)}, ${unanswered} unanswered); ` +
          `restart ${report.restartMs} ms; checkpoint ${report.checkpointBehind} behind; gateway records lost ${report.gatewayLost} (oldest ${report.gatewayLostMaxAgeMs} ms before the kill); ` +
          `U refreshes ${report.upstreamRefreshes}, grants lost to a rotation at U at the kill ${report.upstreamRotationsLost}; ` +
          `checked ${report.grantsChecked} live, ${report.revokedChecked} revoked, ${report.codesRedeemed} codes; temp files ${report.tempFiles}; problems so far ${problems.length}`,
      );
    }
    const code = await server.stop();
    if (code !== 0) problems.push(`the graceful stop after the last cycle exited ${code}:\n${server.output().slice(-2000)}`);
    const last = await verify(cast.env, 'after the final stop');
    if (last.problem) problems.push(last.problem);
    if (last.behind !== 0) {
      const probe = await openProbe(cast.env);
      const beyond = (await probe.auditSince((await probe.tip()) - last.behind)).map((r) => r.event);
      await probe.close();
      problems.push(`after a graceful stop the checkpoint file is ${last.behind} rows behind the head (rows not covered: ${beyond.join(', ')})`);
    }
  } catch (err) {
    problems.push(`the run stopped: ${(err as Error).stack ?? String(err)}${server ? `\nP's output:\n${server.output().slice(-3000)}` : ''}`);
  } finally {
    await server?.kill();
    await cast.close();
    rmSync(cast.dir, { recursive: true, force: true });
  }
  const restarts = cycles.map((c) => c.restartMs);
  const lostOf = (only: boolean) => cycles.filter((c) => c.gatewayOnly === only).map((c) => c.gatewayLost);
  const figures = (values: number[]) => ({ median: median(values), max: Math.max(0, ...values) });
  return {
    engine: ENGINE,
    seed: o.seed,
    cycles,
    problems,
    restartMedianMs: median(restarts),
    restartMaxMs: Math.max(0, ...restarts),
    gatewayLost: { mixed: figures(lostOf(false)), gatewayOnly: figures(lostOf(true)) },
    gatewayLostMaxAgeMs: Math.max(0, ...cycles.map((c) => c.gatewayLostMaxAgeMs)),
    checkpointBehindMax: Math.max(0, ...cycles.map((c) => c.checkpointBehind)),
    upstreamRefreshes: cycles.reduce((n, c) => n + c.upstreamRefreshes, 0),
    upstreamRotationsLost: cycles.reduce((n, c) => n + c.upstreamRotationsLost, 0),
    totals,
  };
}
