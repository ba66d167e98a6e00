/**
 * Found by the failing-dependency suite (test/faults/postgres-restart.pg.test.ts, issue 13 §3):
 * a write failing halfway through a token or registration request left the writes before it
 * committed, because each adapter call and each event write was a transaction of its own:
 *   1. a refresh rotation committed, its audit row not (the database went away in between),
 *      answered 503 — the client's retry with the same refresh token was then a reuse (RT-02),
 *      which ended the grant;
 *   2. a registration whose client row was saved but whose provenance (clients_meta) and audit
 *      row were not — an orphan client, answered 503.
 * Now /token, /register and /revoke are one transaction each (src/provider/request-transaction.ts):
 * here a trigger makes one of the request's last writes fail — on PostgreSQL with SQLSTATE 57P01,
 * as a server shutting down does (answered 503), on SQLite with RAISE(ABORT) (answered 500) — and
 * everything the request wrote before it is asserted rolled back, so the same request succeeds
 * once the trigger is gone. An upstream revocation the rolled-back request would have caused is
 * never sent (Sql.afterCommit, src/consent/revocation.ts). Runs on both engines.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { dropTrigger, onPostgres } from '../helpers/engine.js';
import { rowCounts } from '../helpers/db-probe.js';
import { mcpClientMetadata } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  if (onPostgres) {
    await stack.app.runtime.sql.run(
      `CREATE FUNCTION fail_injected() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'terminating connection due to administrator command' USING ERRCODE = '57P01'; END $$`,
    );
  }
});
afterAll(() => stack.close());
afterEach(() => dropTrigger(stack.app.runtime.sql, 'fail_injected_write', table));

let table = 'audit_log';
/** Make every insert into `on` for which `when` (SQL over NEW) holds fail, as a database going away would. */
async function failInserts(on: string, when = '1 = 1'): Promise<void> {
  table = on;
  const sql = stack.app.runtime.sql;
  await sql.run(
    onPostgres
      ? `CREATE TRIGGER fail_injected_write BEFORE INSERT ON ${on} FOR EACH ROW WHEN (${when}) EXECUTE FUNCTION fail_injected()`
      : `CREATE TRIGGER fail_injected_write BEFORE INSERT ON ${on} WHEN ${when} BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
  );
}

/** The failed request's answer: 503 temporarily_unavailable on PostgreSQL (57P01), 500 server_error on SQLite (a trigger's abort). */
function expectFailed(res: { status: number; body: Record<string, unknown> }): void {
  expect(res.status).toBe(onPostgres ? 503 : 500);
  expect(res.body.error).toBe(onPostgres ? 'temporarily_unavailable' : 'server_error');
  expect(res.body).not.toHaveProperty('access_token');
  expect(res.body).not.toHaveProperty('client_id');
}

async function grantOf(clientId: string): Promise<string> {
  const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
  return consent.grant_id as string;
}

const consumedAt = async (model: string, value: string) =>
  (await rows(stack.app, 'SELECT consumed_at FROM oidc_models WHERE model = ? AND key = ?', model, sha256(value)))[0]?.consumed_at;
const revokedAt = async (grantId: string) => (await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId))[0]?.revoked_at;

describe('one transaction per token, registration and revocation request', () => {
  it("a refresh rotation whose audit row fails is rolled back whole: no new tokens, the refresh token not consumed, and the client's retry works (RT-01/02)", async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'rotation-user' });
    const rt = tokens.body.refresh_token as string;
    const before = await rowCounts(stack.app);
    await failInserts('audit_log', "NEW.event = 'token.issued'");
    expectFailed(await refresh(stack.app, clientId, rt));
    expect(await rowCounts(stack.app), 'no access or refresh token kept').toEqual(before);
    expect(await consumedAt('RefreshToken', rt), 'the refresh token is not consumed').toBeNull();
    await dropTrigger(stack.app.runtime.sql, 'fail_injected_write', 'audit_log');
    const retry = await refresh(stack.app, clientId, rt);
    expect(retry.status, 'the retry is not a reuse').toBe(200);
    expect(retry.body.refresh_token).toBeTruthy();
    expect(await revokedAt(await grantOf(clientId))).toBeNull();
  });

  it.each(['/TOKEN', '/token/', '/Token/'])('the same for a refresh sent to %s, which express and the provider route to the token endpoint too', async (path) => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: `spelling-${path}` });
    const rt = tokens.body.refresh_token as string;
    await failInserts('audit_log', "NEW.event = 'token.issued'");
    const res = await fetch(`${stack.app.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: clientId }),
    });
    expectFailed({ status: res.status, body: (await res.json()) as Record<string, unknown> });
    expect(await consumedAt('RefreshToken', rt), 'the refresh token is not consumed').toBeNull();
    await dropTrigger(stack.app.runtime.sql, 'fail_injected_write', 'audit_log');
    expect((await refresh(stack.app, clientId, rt)).status).toBe(200);
  });

  it('a code redemption whose audit row fails is rolled back: the code is not consumed and its redemption succeeds after (TOK-05)', async () => {
    const clientId = (await registerClient(stack.app)).client_id as string;
    const auth = buildAuthorization(stack.app, { clientId });
    const code = (await drive(new Browser(), auth.url, auth.redirectUri, { login: 'code-user' })).callback.searchParams.get('code') as string;
    const before = await rowCounts(stack.app);
    await failInserts('audit_log', "NEW.event = 'token.issued'");
    expectFailed(await redeem(stack.app, clientId, code, auth.verifier, auth.redirectUri));
    expect(await rowCounts(stack.app)).toEqual(before);
    expect(await consumedAt('AuthorizationCode', code)).toBeNull();
    await dropTrigger(stack.app.runtime.sql, 'fail_injected_write', 'audit_log');
    expect((await redeem(stack.app, clientId, code, auth.verifier, auth.redirectUri)).status).toBe(200);
  });

  it('a registration whose provenance row fails leaves no client behind (no orphan client row), and the same registration succeeds after', async () => {
    const before = await rowCounts(stack.app);
    const accepted = (await auditEvents(stack.app)).filter((e) => e.event === 'registration.accepted').length;
    await failInserts('clients_meta');
    const body = JSON.stringify(mcpClientMetadata({ client_name: 'Orphan test' }));
    const res = await fetch(`${stack.app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expectFailed({ status: res.status, body: (await res.json()) as Record<string, unknown> });
    expect(await rowCounts(stack.app), 'no Client, no clients_meta row').toEqual(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'registration.accepted')).toHaveLength(accepted);
    await dropTrigger(stack.app.runtime.sql, 'fail_injected_write', 'clients_meta');
    const again = await fetch(`${stack.app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(again.status).toBe(201);
  });

  it("a refresh-token reuse whose revocation cannot be audited is rolled back whole and U is not asked; the next reuse revokes the grant, and U is asked after that commit", async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'reuse-user' });
    const rt1 = tokens.body.refresh_token as string;
    const grantId = await grantOf(clientId);
    expect((await refresh(stack.app, clientId, rt1)).status).toBe(200);
    const askedU = stack.upstream.revocations.length;
    await failInserts('audit_log', "NEW.event = 'grant.revoked'");
    expectFailed(await refresh(stack.app, clientId, rt1));
    await stack.app.runtime.revocation.settled();
    expect(await revokedAt(grantId), 'the consent is not revoked').toBeNull();
    expect(stack.upstream.revocations, 'U not asked to revoke').toHaveLength(askedU);
    await dropTrigger(stack.app.runtime.sql, 'fail_injected_write', 'audit_log');
    expect(await refresh(stack.app, clientId, rt1)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    await stack.app.runtime.revocation.settled();
    expect(await revokedAt(grantId)).not.toBeNull();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
  });

  it('a revocation cascade inside a transaction that rolls back asks U nothing (UP-08 after the commit only)', async () => {
    const { clientId } = await authorizeClient(stack, new Browser(), { login: 'cascade-user' });
    const grantId = await grantOf(clientId);
    const askedU = stack.upstream.revocations.length;
    const { stores, revocation } = stack.app.runtime;
    await expect(
      stores.transaction(async () => {
        await revocation.revokeGrant(grantId, 'admin');
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await revocation.settled();
    expect(await revokedAt(grantId)).toBeNull();
    expect(stack.upstream.revocations).toHaveLength(askedU);
    expect(await revocation.revokeGrant(grantId, 'admin')).toBe(true);
    await revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 1);
  });
});
