/**
 * The soak's pass rule (test/soak/verdict.ts) on made-up samples: a descriptor that stays open
 * fails it, the audit checkpoint writer's temp file caught open (by design, after every group
 * commit) does not, and a temp file never closed — two open at once, or the same one in two
 * samples in a row — does.
 */
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_TEMP, evaluate, type Sample } from '../soak/verdict.js';

function samples(files: (i: number) => number, temps: (i: number) => string[] = () => []): Sample[] {
  return Array.from({ length: 13 }, (_, i) => {
    const sockets = 20;
    const checkpointTempFiles = temps(i);
    const checkpointTemps = checkpointTempFiles.length;
    return {
      t: i * 5,
      rss: 180e6,
      heapUsed: 30e6,
      heapAfterGc: 30e6,
      fds: files(i) + sockets + checkpointTemps,
      sockets,
      checkpointTemps,
      checkpointTempFiles,
      eldP99Ms: 5,
      eldMaxMs: 8,
      eldMeanMs: 1,
      eldFloorP99Ms: 3,
      cpuUs: i * 1e6,
      dbBytes: 1e7,
      authorizations: i,
      gateway: i * 100,
      refreshes: i,
      refused: 0,
      revocations: 0,
      errors: 0,
    };
  });
}
const rule = { warmupFraction: 0.2, maxGrowth: 0.1 };
/** The verdict on 13 samples: `files` non-socket descriptors and the checkpoint temp files `temps` at sample i. */
const judge = (files: (i: number) => number, temps?: (i: number) => string[]) => evaluate(samples(files, temps), rule);
const temp = (n: number) => `/data/audit-checkpoint.json.4242.1a2b3c4d-${n}.tmp`;

describe('soak verdict: descriptors', () => {
  it('passes a flat count, and one file open for a single sample', () => {
    expect(judge(() => 31).problems).toEqual([]);
    expect(judge((i) => (i === 8 ? 32 : 31)).problems).toEqual([]);
  });

  it('fails a descriptor that stays open', () => {
    const v = judge((i) => (i >= 10 ? 32 : 31));
    expect(v.problems).toEqual(['descriptors other than sockets grew after the warm-up: at most 31 in the first third, a median of 32 in the last']);
  });

  it('does not count the checkpoint temp file, even found open in the last three samples (the CI run of 2026-12-05)', () => {
    const v = judge(() => 31, (i) => (i >= 10 ? [temp(100 + i)] : []));
    expect(v.problems).toEqual([]);
    expect([v.fdsFirst, v.fdsLast]).toEqual([31, 31]);
  });

  it('fails two checkpoint temp files open at once', () => {
    const v = judge(() => 31, (i) => (i === 6 ? [temp(6), temp(7)] : []));
    expect(v.problems).toEqual(['2 audit checkpoint temp files open at once (the writer has one in flight at a time: the others were never closed)']);
  });

  it('fails the same checkpoint temp file open in two samples in a row (a write never closed)', () => {
    const v = judge(() => 31, (i) => (i >= 10 ? [temp(10)] : []));
    expect(v.problems).toEqual([`audit checkpoint temp files open in two samples in a row (never closed): ${temp(10)}`]);
  });
});

describe('CHECKPOINT_TEMP', () => {
  it('matches the names the checkpoint writer makes, and nothing else', async () => {
    const { tempPath } = await import('../../src/audit/checkpoint-temp.js');
    const made = tempPath('/var/lib/proxy/audit-checkpoint.json', 'deadbeef', 17);
    expect(CHECKPOINT_TEMP.test(made)).toBe(true);
    expect(CHECKPOINT_TEMP.test(`${made} (deleted)`)).toBe(true);
    expect(CHECKPOINT_TEMP.test('/var/lib/proxy/audit-checkpoint.json')).toBe(false);
    expect(CHECKPOINT_TEMP.test('/tmp/other.tmp')).toBe(false);
  });
});
