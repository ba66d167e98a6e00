/**
 * README "Operations" → Retention: expired codes, tokens, sessions, interactions, upstream
 * transactions and idle MCP session bindings "are purged every 10 minutes"
 * (src/runtime/maintenance.ts MAINTENANCE_INTERVAL_MS). test/flow/maintenance.test.ts runs
 * housekeeping by hand; no test checked the schedule (audit of the documentation's claims). Here,
 * on a fake clock: `scheduleMaintenance` runs housekeeping — every purge — at once and then every
 * 10 minutes, not sooner, and no more after it is stopped; and a runtime started with maintenance
 * on (as `serve` starts it) purges the provider's expired rows on that schedule.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { END_EXPIRED_FOR_MS, END_EXPIRED_PER_RUN, endExpiredConsents, MAINTENANCE_INTERVAL_MS, scheduleMaintenance, type MaintenanceDeps } from '../../src/runtime/maintenance.js';
import { createRuntime } from '../../src/runtime/server.js';
import { loadConfig } from '../../src/config/load.js';
import { OidcModelStore } from '../../src/store/oidc-models.js';
import { databaseEnv } from '../helpers/engine.js';
import type { Sql } from '../../src/db/sql.js';
import { TEST_SECRET_KEY } from '../helpers/app.js';

afterEach(() => {
  vi.useRealTimers();
});

const TEN_MINUTES = 10 * 60_000;

/** A few turns of the event loop (setImmediate is not faked): the database's own work finishes. */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Bounded wait (at most ~4 s of real time: the database's I/O, PostgreSQL's round trips) for a condition. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 800 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}

/**
 * Until the housekeeping run under way has ended: a timer that fires during a run skips it. On
 * PostgreSQL a run holds its advisory lock to the end (found in CI: the run at start was still
 * going when the test moved the clock on); on SQLite a run is over within a few turns.
 */
async function runOver(sql: Sql): Promise<void> {
  if (sql.engine === 'postgres') {
    const held = async () => (await sql.one<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'"))?.n ?? 0;
    for (let i = 0; i < 800 && (await held()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await settle();
}

describe('housekeeping schedule', () => {
  it('runs every purge at once, then every 10 minutes — not sooner — until stopped', async () => {
    vi.useFakeTimers();
    expect(MAINTENANCE_INTERVAL_MS).toBe(TEN_MINUTES);
    const purgeModels = vi.fn(async () => 0);
    const purgeOther = vi.fn(async () => 0);
    const idleSince = vi.fn(async () => [] as string[]);
    const deps = {
      models: { purgeExpired: purgeModels },
      clientsMeta: { idleSince },
      extraPurges: [purgeOther],
      audit: {},
      log: pino({ level: 'silent' }),
      clientIdleSeconds: 30 * 86_400,
      transaction: <T>(work: () => Promise<T>) => work(),
    } as unknown as MaintenanceDeps;
    const stop = scheduleMaintenance(deps);
    await vi.advanceTimersByTimeAsync(0);
    expect(purgeModels).toHaveBeenCalledTimes(1);

    await vi.advanceTimersByTimeAsync(TEN_MINUTES - 1);
    expect(purgeModels).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(purgeModels).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(2 * TEN_MINUTES);
    expect(purgeModels).toHaveBeenCalledTimes(4);
    // Every run does every purge and looks for idle clients.
    expect(purgeOther).toHaveBeenCalledTimes(4);
    expect(idleSince).toHaveBeenCalledTimes(4);

    await stop();
    await vi.advanceTimersByTimeAsync(3 * TEN_MINUTES);
    expect(purgeModels).toHaveBeenCalledTimes(4);
  });

  it('a runtime started with maintenance on (as serve starts it) purges expired rows every 10 minutes', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = mkdtempSync(join(tmpdir(), 'maintenance-schedule-'));
    const config = loadConfig({
      PUBLIC_URL: 'http://127.0.0.1:9',
      ...(await databaseEnv(dir)),
      SECRET_KEY: TEST_SECRET_KEY,
      UPSTREAM_ISSUER: 'http://127.0.0.1:1/unused',
      UPSTREAM_CLIENT_ID: 'proxy-client',
      UPSTREAM_CLIENT_SECRET: 'proxy-secret',
      MCP_UPSTREAM_URL: 'http://127.0.0.1:1/mcp',
    });
    // Spied on before the runtime starts: the run at start counts too.
    const purge = vi.spyOn(OidcModelStore.prototype, 'purgeExpired');
    const runtime = await createRuntime(config, { log: pino({ level: 'silent' }) });
    try {
      await until(() => purge.mock.calls.length === 1); // the run at start
      await runOver(runtime.sql);
      await vi.advanceTimersByTimeAsync(TEN_MINUTES - 1);
      await settle();
      expect(purge).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(1);
      await until(() => purge.mock.calls.length === 2);
      await runOver(runtime.sql);
      await vi.advanceTimersByTimeAsync(TEN_MINUTES);
      await until(() => purge.mock.calls.length === 3);
    } finally {
      purge.mockRestore();
      await runtime.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ending expired consents (endExpiredConsents)', () => {
  it('one at a time, each U revocation awaited, at most END_EXPIRED_PER_RUN, and for at most END_EXPIRED_FOR_MS a run', async () => {
    let now = 1_000_000;
    const calls: string[] = [];
    const grants = Array.from({ length: END_EXPIRED_PER_RUN + 5 }, (_, i) => `g${i}`);
    const consents = { expiredKeepingUpstreamToken: async (_at: number, limit: number) => grants.slice(0, limit) };
    const revocation = {
      endExpired: async (grantId: string) => (calls.push(`end ${grantId}`), true),
      settled: async () => {
        calls.push('settled');
        now += 1_000; // U takes a second to answer each
      },
    };
    // A fast U: the whole batch, each revocation awaited before the next consent.
    let fastNow = 0;
    const fast = await endExpiredConsents(consents, { ...revocation, settled: async () => void calls.push('settled') }, () => fastNow++);
    expect(fast).toBe(END_EXPIRED_PER_RUN);
    expect(calls.slice(0, 4)).toEqual(['end g0', 'settled', 'end g1', 'settled']);
    // A slow U: the run stops once END_EXPIRED_FOR_MS has passed.
    calls.length = 0;
    const slow = await endExpiredConsents(consents, revocation, () => now);
    expect(slow).toBe(END_EXPIRED_FOR_MS / 1_000 + 1);
    expect(calls.filter((c) => c.startsWith('end'))).toHaveLength(END_EXPIRED_FOR_MS / 1_000 + 1);
    // Shutting down: the run ends before the next consent (review 2026-12-08: a minute's run outlasted a 30 s stop timeout).
    calls.length = 0;
    let stopping = false;
    const stopped = await endExpiredConsents(consents, { ...revocation, settled: async () => void (stopping = calls.push('settled') >= 4) }, () => 0, () => stopping);
    expect(stopped).toBe(2);
    expect(calls).toEqual(['end g0', 'settled', 'end g1', 'settled']);
  });
});
