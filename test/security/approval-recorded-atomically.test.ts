/**
 * DESIGN §2 step 6 (src/consent/record.ts): an approval is recorded in ONE transaction — the
 * grant oidc-provider saves through its adapter, the consent, U's sealed tokens, P's browser
 * session and the interaction result. A failure after the grant was saved must leave none of it
 * behind: a grant without its consent would be a grant no revocation can reach from /account or
 * /admin. The adapter's writes join the transaction through the driver's async context, on
 * SQLite and on PostgreSQL alike (TEST_ENGINE, test/helpers/engine.ts; src/db/sql.ts).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, startStack, type Stack } from '../helpers/stack.js';
import { registerClient } from '../helpers/app.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const count = async (sql: string, ...params: unknown[]) => ((await rows(stack.app, sql, ...params))[0] as { n: number }).n;

describe('an approval is recorded atomically', () => {
  it('a failure after grant.save() rolls the grant back with everything else: no grant, consent, upstream token, session or code', async () => {
    const { runtime } = stack.app;
    const client = await registerClient(stack.app);
    const upserts = vi.spyOn(runtime.stores.models, 'upsert');
    const save = vi.spyOn(runtime.stores.upstreamTokens, 'save').mockRejectedValueOnce(new Error('disk full'));
    const grantsBefore = await count("SELECT count(*) AS n FROM oidc_models WHERE model = 'Grant'");
    try {
      const auth = buildAuthorization(stack.app, { clientId: client.client_id });
      const result = await drive(new Browser('alice'), auth.url, auth.redirectUri, { login: 'alice' }).catch((err: Error) => err);
      // The browser is shown P's error page; no code reaches the client.
      expect(result).toBeInstanceOf(Error);
      expect((result as Error).message).toMatch(/^unexpected page 500 at .*\/upstream\/callback/);
      expect(save).toHaveBeenCalledTimes(1);
      // The grant WAS saved (through oidc-provider's adapter) before the failure…
      expect(upserts.mock.calls.some(([model]) => model === 'Grant')).toBe(true);
    } finally {
      upserts.mockRestore();
      save.mockRestore();
    }
    // …and rolled back with the rest.
    expect(await count("SELECT count(*) AS n FROM oidc_models WHERE model = 'Grant'")).toBe(grantsBefore);
    expect(await count('SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id)).toBe(0);
    expect(await count('SELECT count(*) AS n FROM upstream_tokens')).toBe(0);
    expect(await count('SELECT count(*) AS n FROM browser_sessions')).toBe(0);
    expect(await count("SELECT count(*) AS n FROM oidc_models WHERE model = 'AuthorizationCode'")).toBe(0);
  });
});
