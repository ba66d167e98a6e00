/**
 * A revocation whose COMMIT was performed but whose answer was lost (PostgreSQL: the connection
 * dropped after COMMIT was sent) — src/consent/revocation.ts `committedCascade`. Before, the
 * error alone decided: the consent was revoked and the upstream token row gone, but U was never
 * asked to revoke its token (UP-08) and no audit row was written. Now a fresh read decides:
 * - committed → the revocation goes on as after any commit: its audit row, U asked, success;
 * - rolled back → the error stands, U is not asked (the retry asks it);
 * - the read failing too → unknown, and the error stands: U is asked when the cascade's pending
 *   upstream revocation is there (upstream_revocations: written in the cascade's transaction, so
 *   there exactly when it committed; 2026-12-08 — U was asked even when it had rolled back);
 * - a consent already revoked → success (nothing depends on the outcome);
 * - PostgreSQL still committing when the answer is lost → the read waits for it (FOR SHARE).
 * The lost answer is simulated around the real transaction (both engines): the work runs and
 * commits (or rolls back), then the caller sees the connection's error.
 *
 * A cascade inside an outer transaction — the /token request's (refresh-token reuse, code replay)
 * — commits with it; when that COMMIT's answer is lost the SQL layer calls afterCommit's
 * `ifUnknown` instead (PostgreSQL only: test/unit/sql-driver.pg.test.ts), and the same read decides
 * (review 2026-12-07: U was never asked). Simulated here by running those callbacks after the
 * outer transaction settled, committed or rolled back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { authorizeClient, Browser, buildAuthorization, drive, refresh, startStack, type Stack } from '../helpers/stack.js';
import type { Revocation, RevocationDeps } from '../../src/consent/revocation.js';
import type pg from 'pg';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { lockWaitSeen } from '../helpers/pg.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack?.close());

const lost = () => new Error('Connection terminated unexpectedly');
type Deps = RevocationDeps & { consents: RevocationDeps['consents'] };
const depsOf = (revocation: Revocation) => (revocation as unknown as { deps: Deps }).deps;

/** Run `fn` with the revocation's transaction (and, with `readFails`, its fresh consent read) patched. */
async function withLostAnswer<T>(mode: 'committed' | 'rolled back', readFails: boolean, fn: () => Promise<T>): Promise<T> {
  const deps = depsOf(stack.app.runtime.revocation);
  const { transaction } = deps;
  const settledRevocation = deps.consents.settledRevocation.bind(deps.consents);
  let inTransaction = false;
  deps.transaction = async <R>(work: () => Promise<R>): Promise<R> => {
    if (mode === 'committed') {
      await transaction(async () => {
        inTransaction = true;
        try {
          return await work();
        } finally {
          inTransaction = false;
        }
      });
      throw lost();
    }
    return transaction(async () => {
      await work();
      throw lost(); // the work ran, the transaction rolls back
    });
  };
  if (readFails) deps.consents.settledRevocation = async (grantId) => (inTransaction ? settledRevocation(grantId) : Promise.reject(lost()));
  try {
    return await fn();
  } finally {
    deps.transaction = transaction;
    deps.consents.settledRevocation = settledRevocation;
  }
}

async function grantWithUpstreamToken(login: string) {
  const { clientId } = await authorizeClient(stack, new Browser(login), { login });
  const [consent] = await rows(stack.app, 'SELECT id, grant_id FROM consents WHERE client_id = ?', clientId);
  expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', consent.grant_id)).toHaveLength(1);
  return { clientId, consentId: Number(consent.id), grantId: consent.grant_id as string };
}
const revokedRows = async (clientId: string) => (await auditEvents(stack.app)).filter((e) => e.event === 'admin.consent_revoked' && e.client_id === clientId);
const state = async (grantId: string) => (await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId))[0]?.revoked_reason ?? null;
const admin = { actor: 'admin' as const, subject: 'admin-1' };

describe('a revocation whose commit answer was lost', () => {
  it('committed: audited, U asked, and the operator sees success', async () => {
    const { clientId, consentId, grantId } = await grantWithUpstreamToken('lost-1');
    const askedU = stack.upstream.revocations.length;
    const consent = await withLostAnswer('committed', false, () => stack.app.runtime.ops.revokeConsent(consentId, admin));
    expect(consent?.revoked_reason).toBe('admin');
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
    expect(await revokedRows(clientId)).toHaveLength(1);
    expect(await state(grantId)).toBe('admin');
  });

  it('rolled back: the error stands, U not asked, nothing audited; the retry revokes', async () => {
    const { clientId, consentId, grantId } = await grantWithUpstreamToken('lost-2');
    const askedU = stack.upstream.revocations.length;
    await expect(withLostAnswer('rolled back', false, () => stack.app.runtime.ops.revokeConsent(consentId, admin))).rejects.toThrow(/terminated/);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations, 'U not asked').toHaveLength(askedU);
    expect(await state(grantId)).toBeNull();
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toHaveLength(1);
    expect(await revokedRows(clientId)).toEqual([]);
    await stack.app.runtime.ops.revokeConsent(consentId, admin);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
    expect(await revokedRows(clientId)).toHaveLength(1);
  });

  it('unknown (the read fails too), committed: U is asked (its pending revocation is there), and the error stands', async () => {
    const { clientId, consentId, grantId } = await grantWithUpstreamToken('lost-3');
    const askedU = stack.upstream.revocations.length;
    await expect(withLostAnswer('committed', true, () => stack.app.runtime.ops.revokeConsent(consentId, admin))).rejects.toThrow(/terminated/);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
    expect(await state(grantId)).toBe('admin');
    expect(await revokedRows(clientId), 'no audit row: the outcome was not known (SECURITY.md says so)').toEqual([]);
  });

  it('unknown (the read fails too), rolled back: U is not asked, the upstream token kept; the retry revokes and asks', async () => {
    const { consentId, grantId } = await grantWithUpstreamToken('lost-3b');
    const askedU = stack.upstream.revocations.length;
    await expect(withLostAnswer('rolled back', true, () => stack.app.runtime.ops.revokeConsent(consentId, admin))).rejects.toThrow(/terminated/);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations, 'U not asked').toHaveLength(askedU);
    expect(await state(grantId)).toBeNull();
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toHaveLength(1);
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_revocations WHERE grant_id = ?', grantId)).toEqual([]);
    await stack.app.runtime.ops.revokeConsent(consentId, admin);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
  });

  it('a consent already revoked: committed or not, nothing depends on it — success, U not asked again', async () => {
    const { clientId, consentId, grantId } = await grantWithUpstreamToken('lost-4');
    await stack.app.runtime.ops.revokeConsent(consentId, admin);
    await stack.app.runtime.revocation.settled();
    const askedU = stack.upstream.revocations.length;
    const consent = await withLostAnswer('committed', false, () => stack.app.runtime.ops.revokeConsent(consentId, admin));
    expect(consent?.revoked_reason).toBe('admin');
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU);
    expect(await revokedRows(clientId)).toHaveLength(2);
    expect(await state(grantId)).toBe('admin');
  });

  // Found by review: on PostgreSQL the connection can drop while the server is still committing
  // (a synchronous standby, a slow WAL flush). A plain read then still sees the consent active and
  // took it for a rollback; then the commit landed — revoked, the upstream token row gone, no
  // audit row, U never asked, and a retry found nothing left to ask U about. The read now waits
  // for the transaction changing the row (FOR SHARE).
  it.runIf(TEST_ENGINE === 'postgres')('PostgreSQL: a COMMIT still under way when the answer is lost — the read waits for it, and the revocation counts as committed', async () => {
    const { clientId, consentId, grantId } = await grantWithUpstreamToken('lost-5');
    const askedU = stack.upstream.revocations.length;
    const deps = depsOf(stack.app.runtime.revocation);
    const { transaction } = deps;
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    deps.transaction = <R>(work: () => Promise<R>) =>
      new Promise<R>((_resolve, reject) => {
        void transaction(async () => {
          const result = await work();
          reject(lost()); // the caller hears of a lost connection now…
          await gate; // …while the transaction, its row lock held, commits later
          return result;
        }).catch(() => undefined);
      });
    try {
      const revoking = stack.app.runtime.ops.revokeConsent(consentId, admin);
      const waiting = await lockWaitSeen((stack.app.runtime.sql as PgSql).pool);
      openGate();
      expect(waiting, 'the read waits for the committing transaction').toBe(true);
      expect((await revoking)?.revoked_reason).toBe('admin');
    } finally {
      openGate();
      deps.transaction = transaction;
    }
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
    expect(await revokedRows(clientId)).toHaveLength(1);
    expect(await state(grantId)).toBe('admin');
  });
});

describe('a cascade inside an outer transaction whose COMMIT answer was lost', () => {
  /** Revoke `grantId` as the /token request does (revokeGrant joined to an outer transaction), that transaction committing or rolling back, then its COMMIT's answer "lost": afterCommit's `ifUnknown` callbacks run instead of its callbacks. */
  async function outerWithLostAnswer(grantId: string, mode: 'committed' | 'rolled back', readFails = false): Promise<void> {
    const deps = depsOf(stack.app.runtime.revocation);
    const { sql } = stack.app.runtime;
    const { afterCommit } = sql;
    const settledRevocation = deps.consents.settledRevocation.bind(deps.consents);
    const unknown: (() => void)[] = [];
    // What the SQL layer does when COMMIT's answer is lost: the callbacks dropped, the `ifUnknown` ones run (through the stores, as the runtime wires them).
    sql.afterCommit = (_fn, ifUnknown) => void (ifUnknown && unknown.push(ifUnknown));
    if (readFails) deps.consents.settledRevocation = () => Promise.reject(lost());
    try {
      await stack.app.runtime.stores
        .transaction(async () => {
          await stack.app.runtime.revocation.revokeGrant(grantId, 'grant_revoked');
          if (mode === 'rolled back') throw lost();
        })
        .catch(() => undefined);
      expect(unknown, 'the cascade registered for an unknown outcome').toHaveLength(1);
      for (const fn of unknown) fn();
      await stack.app.runtime.revocation.settled();
    } finally {
      sql.afterCommit = afterCommit;
      deps.consents.settledRevocation = settledRevocation;
    }
  }

  it('committed: U asked (the read finds the revocation)', async () => {
    const { grantId } = await grantWithUpstreamToken('outer-1');
    const askedU = stack.upstream.revocations.length;
    await outerWithLostAnswer(grantId, 'committed');
    expect(await state(grantId)).toBe('grant_revoked');
    expect(stack.upstream.revocations, 'U asked once').toHaveLength(askedU + 1);
  });

  it('rolled back: U not asked, the consent and its upstream token kept', async () => {
    const { grantId } = await grantWithUpstreamToken('outer-2');
    const askedU = stack.upstream.revocations.length;
    await outerWithLostAnswer(grantId, 'rolled back');
    expect(await state(grantId)).toBeNull();
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toHaveLength(1);
    expect(stack.upstream.revocations, 'U not asked').toHaveLength(askedU);
  });

  it('unknown (the read fails too), committed: U asked (its pending revocation is there)', async () => {
    const { grantId } = await grantWithUpstreamToken('outer-3');
    const askedU = stack.upstream.revocations.length;
    await outerWithLostAnswer(grantId, 'committed', true);
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
  });

  it('unknown (the read fails too), rolled back: U not asked (nothing pending), the upstream token kept', async () => {
    const { grantId } = await grantWithUpstreamToken('outer-4');
    const askedU = stack.upstream.revocations.length;
    await outerWithLostAnswer(grantId, 'rolled back', true);
    expect(stack.upstream.revocations, 'U not asked').toHaveLength(askedU);
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toHaveLength(1);
  });
});

/**
 * PostgreSQL, end to end: the answer to the COMMIT of the next transaction that revokes a consent
 * is lost — performed, then the caller sees the connection's error (`after`), or never sent
 * (`before`: the transaction then rolls back). Every client the app's pool hands out meanwhile is
 * watched; other transactions pass untouched.
 */
function loseNextRevokingCommit(mode: 'after' | 'before'): () => void {
  const { pool } = stack.app.runtime.sql as PgSql;
  let armed = true;
  const watched = new WeakSet<object>();
  const onAcquire = (client: pg.PoolClient) => {
    if (watched.has(client)) return;
    watched.add(client);
    const query = client.query.bind(client) as (config: unknown, ...rest: unknown[]) => Promise<unknown>;
    let revoking = false;
    (client as unknown as { query: typeof query }).query = (config, ...rest) => {
      const text = typeof config === 'string' ? config : ((config as { text?: string } | null)?.text ?? '');
      if (/^UPDATE consents SET revoked_at/.test(text)) revoking = true;
      if (text === 'COMMIT' && revoking && armed && rest.length === 0) {
        armed = false;
        revoking = false;
        return mode === 'after' ? query(config).then(() => Promise.reject(lost())) : Promise.reject(lost());
      }
      if (text === 'COMMIT' || text === 'ROLLBACK') revoking = false;
      return query(config, ...rest);
    };
  };
  pool.on('acquire', onAcquire);
  return () => pool.off('acquire', onAcquire);
}

describe.runIf(TEST_ENGINE === 'postgres')('PostgreSQL, end to end: the outer COMMIT answer lost', () => {
  it('a refresh token used twice at /token: the grant revoked with the request, the answer lost — U asked for its token once', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('e2e-reuse'), { login: 'e2e-reuse' });
    const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
    const upstream = await stack.app.runtime.stores.upstreamTokens.get(grantId as string);
    const rt = tokens.body.refresh_token as string;
    expect((await refresh(stack.app, clientId, rt)).status).toBe(200);
    const before = stack.upstream.revokedTokens.length;
    const restore = loseNextRevokingCommit('after');
    try {
      expect((await refresh(stack.app, clientId, rt)).status, 'the reuse: its COMMIT answer lost').toBeGreaterThanOrEqual(500);
    } finally {
      restore();
    }
    await stack.app.runtime.revocation.settled();
    expect(await state(grantId as string)).toBe('grant_revoked');
    expect(stack.upstream.revokedTokens.slice(before)).toEqual([upstream?.refreshToken]);
  });

  it('a second approval superseding the first, the answer lost: U asked for the superseded token once; never sent: U not asked', async () => {
    for (const mode of ['after', 'before'] as const) {
      const browser = new Browser(`e2e-supersede-${mode}`);
      const { clientId } = await authorizeClient(stack, browser, { login: `e2e-supersede-${mode}` });
      const [{ grant_id: first }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
      const upstream = await stack.app.runtime.stores.upstreamTokens.get(first as string);
      const before = stack.upstream.revokedTokens.length;
      const restore = loseNextRevokingCommit(mode);
      try {
        const again = buildAuthorization(stack.app, { clientId, prompt: 'consent' });
        await drive(browser, again.url, again.redirectUri, { login: `e2e-supersede-${mode}` }).catch(() => undefined); // the approval fails: its COMMIT's answer was lost
      } finally {
        restore();
      }
      await stack.app.runtime.revocation.settled();
      if (mode === 'after') {
        expect(await state(first as string)).toBe('superseded');
        expect(stack.upstream.revokedTokens.slice(before), 'committed: U asked').toEqual([upstream?.refreshToken]);
      } else {
        expect(await state(first as string)).toBeNull();
        expect(stack.upstream.revokedTokens.slice(before), 'rolled back: U not asked').toEqual([]);
      }
    }
  });
});

it("a listener that throws on the path of a lost COMMIT answer is reported as a warning, not an unhandled rejection", async () => {
  const { grantId } = await grantWithUpstreamToken('listener-throws');
  const revocation = stack.app.runtime.revocation;
  const { sql } = stack.app.runtime;
  const { afterCommit } = sql;
  const listeners = (revocation as unknown as { listeners: ((grantId: string) => void)[] }).listeners;
  const boom = () => {
    throw new Error('listener boom');
  };
  listeners.push(boom);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('warning', onWarning);
  process.on('unhandledRejection', onUnhandled);
  sql.afterCommit = (_fn, ifUnknown) => ifUnknown?.();
  try {
    await revocation.revokeGrant(grantId, 'admin');
    await revocation.settled();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    sql.afterCommit = afterCommit;
    listeners.splice(listeners.indexOf(boom), 1);
    process.off('warning', onWarning);
    process.off('unhandledRejection', onUnhandled);
  }
  expect(unhandled).toEqual([]);
  expect(warnings.some((w) => w.includes('listener boom'))).toBe(true);
});

