/**
 * upstream_revocations and its sender (src/store/upstream-revocations.ts,
 * src/consent/upstream-revocations.ts; UP-08, RFC 7009), on the suite's engine, U a fake object:
 * - a due row is claimed by one process per attempt, however many read it, also one that read it
 *   after the claim (review 2026-12-08: a cascade's own attempt claimed a row housekeeping had just
 *   claimed, and U was asked twice); only the claim's holder gives it back or deletes it;
 * - a row this process cannot send (the token sealed under a key it lacks, no U configured) is
 *   given back unasked, its try not counted, due a retry interval later, with one warning a run —
 *   and abandoned a week after P let it go (review: such rows stayed for ever, warned about each
 *   run); a row whose sealed value cannot be opened at all is abandoned at once (it was retried
 *   for ever and stopped each run);
 * - delays double from 10 minutes to 6 hours; `stop()` ends a run between rows;
 * - U's error answers (the errors openid-client really throws) are kept as their message, U's HTTP
 *   status and OAuth error code — never U's error_description or body, which may echo the token
 *   (review 2026-12-08: the status was read from `cause`, U's body for a ResponseBodyError).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/crypto/keys.js';
import type { Sql } from '../../src/db/sql.js';
import type { Audit } from '../../src/audit/audit.js';
import type { UpstreamClient } from '../../src/upstream/presets.js';
import { createUpstreamRevocationStore } from '../../src/store/upstream-revocations.js';
import { GIVE_UP_MS, RETRY_FIRST_MS, RETRY_MAX_MS, UpstreamRevocations, retryDelay } from '../../src/consent/upstream-revocations.js';
import { openTestSql } from '../helpers/engine.js';
import { jsonAnswer, revocationError } from '../helpers/upstream-errors.js';

const opened: Sql[] = [];
afterAll(async () => {
  for (const sql of opened) await sql.close();
});

async function store(keys = new KeyRing(randomBytes(32))) {
  const sql = await openTestSql(mkdtempSync(join(tmpdir(), 'upstream-revocations-')));
  opened.push(sql);
  return { sql, keys, store: createUpstreamRevocationStore(sql, keys) };
}

/** A sender over `s` with a fake U, audit and log, at the clock `now.t`. */
function sender(s: ReturnType<typeof createUpstreamRevocationStore>, options: { upstream?: boolean; fail?: boolean; failWith?: (token: string) => Promise<Error> } = {}) {
  const now = { t: 1_000_000 };
  const asked: string[] = [];
  const audited: { event: string; details?: unknown }[] = [];
  const logged: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const upstream = {
    revoke: async (token: string) => {
      asked.push(token);
      if (options.failWith) throw await options.failWith(token);
      if (options.fail) throw new Error('U unreachable');
      return true;
    },
  } as unknown as UpstreamClient;
  const log = Object.fromEntries(['debug', 'info', 'warn', 'error'].map((level) => [level, (obj: Record<string, unknown>, msg: string) => logged.push({ level, obj, msg })])) as unknown as Logger;
  const audit = { record: async (e: { event: string; details?: unknown }) => void audited.push(e) } as unknown as Audit;
  const revocations = new UpstreamRevocations({ store: s, audit, log, ...(options.upstream === false ? {} : { upstream: () => upstream }), clock: () => now.t });
  return { revocations, now, asked, audited, logged };
}

describe('upstream_revocations: claims', () => {
  it('a due row is claimed by one reader; a reader that read it after the claim cannot claim it either', async () => {
    const { sql, store: s } = await store();
    await s.add('g1', { subject: 'ann', clientId: 'c1' }, { accessToken: 'at-1', refreshToken: 'rt-1' }, 1_000, 2_000, 'U unreachable');
    const [asA] = await s.due(2_000, 10);
    const [asB] = await s.due(2_000, 10);
    expect(await s.claim(asA!, 2_000, 9_000)).toEqual({ id: asA!.id, until: 9_000 });
    expect(await s.claim(asB!, 2_000, 9_000), 'read before the claim').toBeUndefined();
    expect(await s.claim(asB!, 9_500, 20_000), 'read before the claim, tried once that claim has run out: the row is not as it read it').toBeUndefined();
    expect(await s.forGrant('g1', 2_000), 'claimed: not due').toEqual([]);
    const [asC] = await sql.all<typeof asA & object>('SELECT * FROM upstream_revocations WHERE grant_id = ?', ['g1']);
    expect(await s.claim(asC!, 2_000, 9_000), 'read after the claim, not due').toBeUndefined();
    expect(await s.due(9_000, 10)).toMatchObject([{ grant_id: 'g1', attempts: 2, next_at: 9_000 }]);
    expect(s.open(asA!)).toEqual({ accessToken: 'at-1', refreshToken: 'rt-1', expiresAt: undefined });
  });

  it('only the claim still standing gives a row back or deletes it', async () => {
    const { store: s } = await store();
    await s.add('g2', { subject: 'bo' }, { accessToken: 'at-2' }, 1_000, 1_000, 'first');
    const [row] = await s.due(1_000, 10);
    const first = (await s.claim(row!, 1_000, 5_000))!;
    // The first claimant stalled past its claim; another claims the row at 5,000.
    const [again] = await s.due(5_000, 10);
    const second = (await s.claim(again!, 5_000, 9_000))!;
    await s.later(first, 1_500, 'stale', true);
    await s.remove(first);
    expect(await s.due(9_000, 10), "the stale claim changed nothing: the row is the second's").toMatchObject([{ grant_id: 'g2', attempts: 3, next_at: 9_000 }]);
    await s.later(second, 12_000, 'sealed under another key', false);
    expect(await s.due(12_000, 10), 'given back unasked: the try not counted').toMatchObject([{ attempts: 2, next_at: 12_000 }]);
  });

  it('sealed bound to its grant: a row copied to another grant does not open', async () => {
    const { sql, store: s } = await store();
    await s.add('g3', { subject: 'cy' }, { accessToken: 'at-3' }, 1_000, 1_000, 'x');
    await sql.run("UPDATE upstream_revocations SET grant_id = 'g4' WHERE grant_id = 'g3'");
    const [row] = await s.forGrant('g4', 1_000);
    expect(() => s.open(row!)).toThrow();
  });
});

describe('the sender', () => {
  it('sealed under a key this process lacks: not asked, given back for a retry interval, one warning a run; abandoned a week after', async () => {
    const { sql, store: s } = await store();
    const { revocations, now, asked, audited, logged } = sender(createUpstreamRevocationStore(sql, new KeyRing(randomBytes(32))));
    await s.add('k1', { subject: 'di' }, { accessToken: 'at', refreshToken: 'rt' }, now.t - 1000, now.t, 'first');
    await s.add('k2', { subject: 'di' }, { accessToken: 'at', refreshToken: 'rt' }, now.t - GIVE_UP_MS + 60_000, now.t, 'first');
    expect(await revocations.sendDue()).toBe(0);
    expect(asked).toEqual([]);
    expect(await s.due(now.t + RETRY_FIRST_MS, 10)).toMatchObject([
      { grant_id: 'k1', attempts: 1, next_at: now.t + RETRY_FIRST_MS },
      { grant_id: 'k2', attempts: 1, next_at: now.t + RETRY_FIRST_MS },
    ]);
    const warnings = logged.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.obj).toMatchObject({ grantIds: ['k1', 'k2'], keyIds: [expect.any(String)] });
    now.t += RETRY_FIRST_MS;
    await revocations.sendDue();
    expect(asked).toEqual([]);
    expect(audited).toMatchObject([{ event: 'upstream.revocation_abandoned', details: { grant_id: 'k2', error: expect.stringContaining('sealed under key') } }]);
    expect(logged.filter((l) => l.level === 'error').map((l) => l.obj.grantId)).toEqual(['k2']);
    expect((await s.due(now.t + RETRY_FIRST_MS, 10)).map((r) => r.grant_id)).toEqual(['k1']);
  });

  it('no U configured in this process: not asked, given back unasked', async () => {
    const { store: s } = await store();
    const { revocations, now, audited } = sender(s, { upstream: false });
    await s.add('n1', { subject: 'ed' }, { accessToken: 'at' }, now.t, now.t, 'first');
    expect(await revocations.sendDue()).toBe(0);
    expect(await s.due(now.t + RETRY_FIRST_MS, 10)).toMatchObject([{ grant_id: 'n1', attempts: 1 }]);
    expect(audited).toEqual([]);
  });

  it('a sealed value that cannot be opened at all: abandoned at once, and the run goes on to the next row', async () => {
    const { sql, store: s } = await store();
    const { revocations, now, asked, audited } = sender(s);
    await s.add('bad', { subject: 'flo' }, { accessToken: 'at-bad' }, now.t - 2, now.t - 2, 'first');
    await s.add('good', { subject: 'flo' }, { accessToken: 'at-good', refreshToken: 'rt-good' }, now.t - 1, now.t - 1, 'first');
    await sql.run("UPDATE upstream_revocations SET sealed_access = 'not a sealed value' WHERE grant_id = 'bad'");
    expect(await revocations.sendDue()).toBe(1);
    expect(asked).toEqual(['rt-good']);
    expect(audited.map((a) => a.event)).toEqual(['upstream.revocation_abandoned', 'upstream.token_revoked']);
    expect(await s.count()).toBe(0);
  });

  it('U failing: asked, due again after the doubled delay; `stop()` ends a run between rows', async () => {
    const { store: s } = await store();
    const { revocations, now, asked } = sender(s, { fail: true });
    await s.add('f1', { subject: 'gil' }, { accessToken: 'a1', refreshToken: 'r1' }, now.t, now.t, 'first');
    await s.add('f2', { subject: 'gil' }, { accessToken: 'a2', refreshToken: 'r2' }, now.t, now.t, 'first');
    expect(await revocations.sendDue()).toBe(0);
    expect(asked).toEqual(['r1', 'r2']);
    expect(await s.due(now.t + 2 * RETRY_FIRST_MS, 10)).toMatchObject([
      { grant_id: 'f1', attempts: 2, next_at: now.t + 2 * RETRY_FIRST_MS },
      { grant_id: 'f2', attempts: 2, next_at: now.t + 2 * RETRY_FIRST_MS },
    ]);
    // Stopped while the run asks U for the first row: the second is not asked.
    now.t += 2 * RETRY_FIRST_MS;
    const stopping = sender(s, { failWith: async () => (revocations.stop(), stopping.revocations.stop(), new Error('U unreachable')) });
    const { revocations: run, asked: askedInRun } = stopping;
    stopping.now.t = now.t;
    await run.sendDue();
    expect(askedInRun, 'stopped between rows: the second row not asked').toEqual(['r1']);
    expect(revocations.stopped && run.stopped).toBe(true);
  });

  it("U's error answer: last_error and the log keep U's HTTP status and OAuth error code, never its error_description or body (which echo the token)", async () => {
    const { sql, store: s } = await store();
    const answers: [(token: string) => () => Response, string][] = [
      [(t) => jsonAnswer(400, { error: 'invalid_request', error_description: `token ${t} is not valid`, token: t, status: 200 }), 'server responded with an error in the response body (HTTP 400 invalid_request)'],
      [(t) => jsonAnswer(400, { error: `unknown token ${t}` }), 'server responded with an error in the response body (HTTP 400)'],
      [(t) => jsonAnswer(401, { error: 'invalid_client' }, { 'www-authenticate': `Bearer error="invalid_token", error_description="${t}"` }), 'server responded with a challenge in the WWW-Authenticate HTTP Header (HTTP 401)'],
      [(t) => () => new Response(`<p>${t}</p>`, { status: 503, headers: { 'content-type': 'text/html' } }), 'unexpected HTTP response status code (HTTP 503)'],
    ];
    const expected: Record<string, string> = {};
    for (const [i, [answer, message]] of answers.entries()) {
      const grant = `e${i}`;
      const { revocations, now, logged } = sender(s, { failWith: (token) => revocationError(answer(token), token) });
      await s.add(grant, { subject: 'hal' }, { accessToken: `at-${grant}-0123456789abcdef`, refreshToken: `rt-${grant}-0123456789abcdef` }, now.t, now.t, 'first');
      expect(await revocations.sendDue()).toBe(0);
      expect(logged.filter((l) => l.level === 'warn').map((l) => l.obj.err)).toEqual([message]);
      expected[grant] = message;
    }
    const stored = await sql.all<{ grant_id: string; last_error: string }>('SELECT * FROM upstream_revocations');
    expect(Object.fromEntries(stored.map((r) => [r.grant_id, r.last_error]))).toEqual(expected);
    expect(JSON.stringify(stored)).not.toMatch(/[ar]t-e\d-0123456789abcdef/);
  });

  it('retry delays double from RETRY_FIRST_MS to RETRY_MAX_MS', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelay)).toEqual([1, 2, 4, 8, 16, 32, 64, 64].map((n) => Math.min(n * RETRY_FIRST_MS, RETRY_MAX_MS)));
    expect(retryDelay(1)).toBe(10 * 60_000);
    expect(retryDelay(99)).toBe(6 * 60 * 60_000);
  });
});
