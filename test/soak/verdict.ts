/**
 * The soak's pass rule (issue 13 §4), separate so it is plain to read: samples before
 * `warmupFraction` of the run are the warm-up; after it RSS and heap (after a full GC) may grow
 * by less than `maxGrowth` — the mean of the last three samples over the mean of the first three
 * (first and last sample when there are fewer than six) — and descriptors must not grow:
 *   - descriptors that are not sockets (files, pipes, event fds): the last third's median is not
 *     above the first third's maximum (a leak stays; a file open for one sample is not growth:
 *     the PostgreSQL soak saw 23 → 24 → 23 once). The audit checkpoint writer's temp file is not
 *     counted: under load it is rewritten after every group commit, so a sample finds it open
 *     often, three samples in a row in one CI run (31 → 32, a failure that was no leak); instead
 *     no sample may find more than one open (the writer has one write in flight at a time), and
 *     none may find open the same one as the sample before (each write has a name of its own and
 *     lasts milliseconds): either is a temp file never closed;
 *   - sockets are the connections of the moment (the load's keep-alive pools, P's pools to U and
 *     R open and close one or two as the mix varies): the last third's median is not above the
 *     first third's maximum + SOCKET_SLACK. A leak climbs past both.
 */
import type { LoadCounts } from './load.js';

export interface Sample extends LoadCounts {
  /** seconds since the load started */
  t: number;
  rss: number;
  heapUsed: number;
  heapAfterGc: number;
  fds: number;
  sockets: number;
  /** of the fds, the audit checkpoint writer's temp files (at most one in flight) */
  checkpointTemps: number;
  /** their names (CHECKPOINT_TEMP), when the sampler reports them */
  checkpointTempFiles?: string[];
  eldP99Ms: number;
  eldMaxMs: number;
  eldMeanMs: number;
  /** the same p99 in an idle Node process on the machine at the same time (the noise floor) */
  eldFloorP99Ms: number;
  cpuUs: number;
  dbBytes: number;
}

export interface Verdict {
  warmupS: number;
  rssFirstMb: number;
  rssLastMb: number;
  rssGrowthPct: number;
  heapFirstMb: number;
  heapLastMb: number;
  heapGrowthPct: number;
  /** descriptors other than sockets: the first third's maximum and the last third's median, after the warm-up */
  fdsFirst: number;
  fdsLast: number;
  /** sockets: the first third's maximum and the last third's median, after the warm-up */
  socketsFirst: number;
  socketsLast: number;
  eldP99Median: number;
  eldP99Max: number;
  eldFloorP99Median: number;
  problems: string[];
}

/** A descriptor's target that is the audit checkpoint writer's temp file (src/audit/checkpoint-temp.ts). */
export const CHECKPOINT_TEMP = /audit-checkpoint\.json\.\d+\.[0-9a-z]+-\d+\.tmp(?: \(deleted\))?$/;

/** Connections that come and go with the load between two samples. */
export const SOCKET_SLACK = 2;

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2) : 0;
};

export function evaluate(samples: Sample[], o: { warmupFraction: number; maxGrowth: number }): Verdict {
  const duration = samples.at(-1)?.t ?? 0;
  const warmupS = duration * o.warmupFraction;
  const after = samples.filter((s) => s.t >= warmupS - 1e-6);
  const problems: string[] = [];
  if (after.length < 2) problems.push(`only ${after.length} samples after the warm-up: run longer or sample more often`);
  const k = after.length >= 6 ? 3 : 1;
  const edges = (key: 'rss' | 'heapAfterGc') => [mean(after.slice(0, k).map((s) => s[key])), mean(after.slice(-k).map((s) => s[key]))] as const;
  const [rssFirst, rssLast] = edges('rss');
  const [heapFirst, heapLast] = edges('heapAfterGc');
  const growth = (first: number, last: number) => (first > 0 ? (last / first - 1) * 100 : 0);
  const third = Math.max(1, Math.floor(after.length / 3));
  const files = (s: Sample) => s.fds - s.sockets - s.checkpointTemps;
  const v: Verdict = {
    warmupS,
    rssFirstMb: rssFirst / 2 ** 20,
    rssLastMb: rssLast / 2 ** 20,
    rssGrowthPct: growth(rssFirst, rssLast),
    heapFirstMb: heapFirst / 2 ** 20,
    heapLastMb: heapLast / 2 ** 20,
    heapGrowthPct: growth(heapFirst, heapLast),
    fdsFirst: Math.max(...after.slice(0, third).map(files)),
    fdsLast: median(after.slice(-third).map(files)),
    socketsFirst: Math.max(...after.slice(0, third).map((s) => s.sockets)),
    socketsLast: median(after.slice(-third).map((s) => s.sockets)),
    eldP99Median: median(after.map((s) => s.eldP99Ms)),
    eldP99Max: Math.max(...after.map((s) => s.eldP99Ms)),
    eldFloorP99Median: median(after.map((s) => s.eldFloorP99Ms)),
    problems,
  };
  if (!Number.isFinite(heapFirst)) problems.push('no heap-after-GC figure: run the server with --expose-gc');
  if (v.rssGrowthPct >= o.maxGrowth * 100) problems.push(`RSS grew ${v.rssGrowthPct.toFixed(1)} % after the warm-up (limit ${o.maxGrowth * 100} %)`);
  if (v.heapGrowthPct >= o.maxGrowth * 100) problems.push(`heap grew ${v.heapGrowthPct.toFixed(1)} % after the warm-up (limit ${o.maxGrowth * 100} %)`);
  if (v.fdsLast > v.fdsFirst) problems.push(`descriptors other than sockets grew after the warm-up: at most ${v.fdsFirst} in the first third, a median of ${v.fdsLast} in the last`);
  const temps = Math.max(0, ...samples.map((s) => s.checkpointTemps));
  if (temps > 1) problems.push(`${temps} audit checkpoint temp files open at once (the writer has one in flight at a time: the others were never closed)`);
  const stuck = new Set<string>();
  samples.forEach((s, i) => {
    for (const f of s.checkpointTempFiles ?? []) if (samples[i - 1]?.checkpointTempFiles?.includes(f)) stuck.add(f);
  });
  if (stuck.size) problems.push(`audit checkpoint temp files open in two samples in a row (never closed): ${[...stuck].join(', ')}`);
  if (v.socketsLast > v.socketsFirst + SOCKET_SLACK) problems.push(`sockets grew after the warm-up: at most ${v.socketsFirst} in the first third, a median of ${v.socketsLast} in the last`);
  return v;
}
