/**
 * A disabled client's access tokens stop at the gateway as soon as the flag commits (DESIGN §3
 * "Actions cascade"; src/gateway/token-check.ts). Disabling commits the flag first and then revokes
 * each consent; before this check, a cascade cut short (a failure, a crash) left those consents'
 * tokens working until housekeeping finished it, one to eleven minutes later (found in the
 * 2026-12-06 reviews of client operations). The flag moves the gateway generation (migration 0013 /
 * postgres 0005), so a token whose facts are cached — in this process or in another one on the
 * same database — is refused on the next request, and R is not contacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, type TestApp } from '../helpers/app.js';
import { authorizeClient, Browser, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE, mcpPost } from '../helpers/mcp-http.js';

let stack: Stack;
let replica: TestApp;
beforeAll(async () => {
  stack = await startStack();
  replica = await startReplica(stack);
});
afterAll(async () => {
  await replica?.close();
  await stack?.close();
});

const admin = { actor: 'admin' as const, subject: 'admin-1' };
const ping = (app: TestApp, token: string) => mcpPost(`${app.url}/mcp`, token, INITIALIZE);
/** The refusals tallied for `reason` in each app (a refusal of an unusable token is tallied per address, reason and minute, DESIGN §9), written now. */
async function tallied(apps: TestApp[], reason: string): Promise<number[]> {
  for (const app of apps) {
    app.runtime.refusals.tally.flush();
    await app.runtime.audit.flush();
  }
  return (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected_aggregate' && e.reason === reason).map((e) => JSON.parse(e.details as string).count as number);
}
const activeConsents = async (clientId: string) => (await rows(stack.app, 'SELECT id FROM consents WHERE client_id = ? AND revoked_at IS NULL', clientId)).length;

/** Disable `clientId` with every consent's revocation failing: the flag commits, the consents stay active (a cascade cut short). */
async function disableCutShort(clientId: string): Promise<void> {
  const revocation = stack.app.runtime.revocation;
  const revokeInTransaction = revocation.revokeInTransaction.bind(revocation);
  revocation.revokeInTransaction = async () => {
    throw new Error('the upstream token row cannot be unsealed (test)');
  };
  try {
    await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/unsealed/);
  } finally {
    revocation.revokeInTransaction = revokeInTransaction;
  }
}

describe('a disabled client at the gateway', () => {
  it('its token is refused on the next request once the flag commits, in this process and in another one, even with its consent still active; R untouched', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('dct-a'), { login: 'dct-a' });
    const token = tokens.body.access_token as string;
    // The token's facts cached in both processes.
    expect((await ping(stack.app, token)).status).toBe(200);
    expect((await ping(replica, token)).status).toBe(200);

    await disableCutShort(clientId);
    expect(await activeConsents(clientId), 'the cascade was cut short: the consent is still active').toBe(1);

    const before = stack.mcp.received.length;
    for (const app of [stack.app, replica]) {
      const res = await ping(app, token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(stack.mcp.received.length, 'R was not contacted').toBe(before);
    expect(await tallied([stack.app, replica], 'client_disabled'), 'one refusal tallied in each process').toEqual([1, 1]);
  });

  it('re-enabled before housekeeping revoked its consents, the client works again (the flag, not a cached refusal, decides)', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('dct-b'), { login: 'dct-b' });
    const token = tokens.body.access_token as string;
    await disableCutShort(clientId);
    expect((await ping(replica, token)).status).toBe(401);
    await stack.app.runtime.ops.enableClient(clientId, admin);
    expect((await ping(replica, token)).status).toBe(200);
    expect((await ping(stack.app, token)).status).toBe(200);
  });

  it('another client of the same user is not affected', async () => {
    const disabled = await authorizeClient(stack, new Browser('dct-c'), { login: 'dct-c' });
    const other = await authorizeClient(stack, new Browser('dct-c'), { login: 'dct-c' });
    await disableCutShort(disabled.clientId);
    expect((await ping(stack.app, disabled.tokens.body.access_token as string)).status).toBe(401);
    expect((await ping(stack.app, other.tokens.body.access_token as string)).status).toBe(200);
  });
});
