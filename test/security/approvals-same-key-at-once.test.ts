/**
 * Two approvals of the same consent key (subject, client, redirect URI, resource) recorded at the
 * same time — a user approving in two tabs, or two browsers (src/consent/record.ts,
 * ConsentStore.lockKey). On SQLite the write transaction serializes them: the second finds the
 * first's consent and supersedes it. On PostgreSQL (READ COMMITTED) both read the same previous
 * consent (here: none), both inserted, and the second insert failed on the unique index
 * `consents_active_key` (23505): an error page, although a retry worked. Now the approval's
 * transaction first takes a lock on its key, so the second waits for the first and supersedes it.
 * The test holds the first approval right after its read of the previous consent until the second
 * has read it too (the bug) or waits for a lock (the fix), so both reach the record step together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, CLIENT_REDIRECT, isConsentPage, redeem, startStack, type Stack, approveAndStopAtU as approveAtU } from '../helpers/stack.js';
import type { Page } from '../helpers/browser.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const approveAndStopAtU = (browser: Browser, clientId: string, login: string) => approveAtU(stack.app, browser, clientId, login);

/** Whether a connection to the app's database waits for a lock now. */
async function lockWaiting(): Promise<boolean> {
  const { rows: found } = await (stack.app.runtime.sql as PgSql).pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
  return (found[0] as { n: number }).n > 0;
}

describe('two approvals of the same key at once', () => {
  it.skipIf(TEST_ENGINE !== 'postgres')('PostgreSQL: both are recorded — the second supersedes the first (revoked, its upstream token revoked at U), one active consent, no error page', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const tabs = [new Browser('same-key-1'), new Browser('same-key-2')];
    const flows = [await approveAndStopAtU(tabs[0]!, clientId, 'sam'), await approveAndStopAtU(tabs[1]!, clientId, 'sam')];
    await stack.app.runtime.revocation.settled();
    const revokedAtUBefore = stack.upstream.revokedTokens.length;

    const consents = stack.app.runtime.stores.consents;
    const unrevoked = consents.unrevoked.bind(consents);
    let reads = 0;
    let waiterSeen = false;
    consents.unrevoked = async (key) => {
      const found = await unrevoked(key);
      if (key.clientId !== clientId) return found;
      reads++;
      // Hold this approval (its transaction open) until the other one read too, or waits for a lock: bounded, 10 s.
      for (let i = 0; i < 500 && reads < 2; i++) {
        if (await lockWaiting()) {
          waiterSeen = true;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return found;
    };
    let landed: Page[];
    try {
      landed = await Promise.all(flows.map((f, i) => tabs[i]!.navigate(f.callback, { initiator: stack.upstream.issuer, stopAt: (u) => u !== f.callback })));
    } finally {
      consents.unrevoked = unrevoked;
    }
    expect(reads, 'both approvals reached the record step').toBe(2);
    // Each callback answered with its redirect to the authorization's resume URL: no error page.
    for (const page of landed) {
      expect(page.status, `the callback answered ${page.status}, not its redirect`).toBe(0);
      expect(page.hops.map((h) => h.status)).toEqual([303]);
    }

    const recorded = (await rows(stack.app, 'SELECT grant_id, revoked_reason FROM consents WHERE client_id = ? ORDER BY id', clientId)) as { grant_id: string; revoked_reason: string | null }[];
    expect(
      recorded.map((c) => c.revoked_reason),
      'the first superseded, exactly one active',
    ).toEqual(['superseded', null]);
    expect(waiterSeen, 'the second approval waited for the first (the lock on the key)').toBe(true);
    const [first, second] = recorded as [(typeof recorded)[0], (typeof recorded)[0]];
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE subject = ?', 'sam')).toEqual([{ grant_id: second.grant_id }]);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revokedTokens.length - revokedAtUBefore, "U asked once, for the superseded grant's upstream token").toBe(1);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'upstream.token_revoked' && e.details?.includes(first.grant_id))).toHaveLength(1);

    // Resumed once both committed: the second approval's authorization ends with a code that redeems; the
    // first's grant is gone (superseded), so oidc-provider asks for consent again — a consent page, no error.
    const ends = await Promise.all(landed.map((page, i) => tabs[i]!.navigate(page.url, { stopAt: (u) => u.startsWith(CLIENT_REDIRECT) })));
    const withCode = ends.findIndex((page) => page.status === 0 && new URL(page.url).searchParams.get('code'));
    expect(withCode).toBeGreaterThanOrEqual(0);
    expect(isConsentPage(ends[1 - withCode]!), 'the superseded tab is asked again').toBe(true);
    const code = new URL(ends[withCode]!.url).searchParams.get('code') as string;
    expect((await redeem(stack.app, clientId, code, flows[withCode]!.verifier)).status).toBe(200);
  });
});
