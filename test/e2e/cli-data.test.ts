/**
 * The CLI's client and consent commands against a live server's database: listing (text and
 * --json) and revocation that cascades like everywhere else — the gateway refuses the very next
 * request, the upstream's revocation endpoint is called, the audit log records the CLI as actor.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, type Io } from '../../src/cli/index.js';
import { auditEvents, TEST_SECRET_KEY } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import { mcpPost, INITIALIZE } from '../helpers/mcp-http.js';
import { databaseEnv } from '../helpers/engine.js';
import { KeyRing } from '../../src/crypto/keys.js';

let stack: Stack;
let env: Record<string, string>;
beforeAll(async () => {
  stack = await startStack();
  env = {
    ...(await databaseEnv(stack.app.dir)), // the server's database, on the test engine
    SECRET_KEY: TEST_SECRET_KEY,
    PUBLIC_URL: stack.app.url,
    UPSTREAM_ISSUER: stack.upstream.issuer,
    UPSTREAM_CLIENT_ID: stack.upstream.clientId,
    UPSTREAM_CLIENT_SECRET: stack.upstream.clientSecret,
  };
});
afterAll(() => stack.close());

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('cli › consents and clients', () => {
  it('lists consents and revokes one with the full cascade', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'carol', register: { client_name: 'CLI Target' } });
    const mcp = `${stack.app.url}/mcp`;
    expect((await mcpPost(mcp, tokens.body.access_token, INITIALIZE)).status).toBe(200);

    const list = capture();
    expect(await run(['consents', 'list', '--client', clientId, '--json'], list)).toBe(0);
    const [consent] = JSON.parse(list.stdout[0] as string);
    expect(consent).toMatchObject({ subject: 'carol', client_id: clientId, scopes: 'mcp:tools', status: 'active' });

    const text = capture();
    expect(await run(['consents', 'list', '--subject', 'carol'], text)).toBe(0);
    expect(text.stdout[0]).toMatch(/^id\s+subject\s+client_id/);
    expect(text.stdout[0]).toContain(clientId);

    const revoke = capture();
    expect(await run(['consents', 'revoke', String(consent.id)], revoke)).toBe(0);
    expect(revoke.stdout[0]).toBe(`revoked consent ${consent.id} (carol → ${clientId})`);
    expect((await mcpPost(mcp, tokens.body.access_token, INITIALIZE)).status).toBe(401);
    expect(stack.upstream.revocations.length).toBeGreaterThan(0);
    expect((await auditEvents(stack.app)).find((e) => e.event === 'cli.consent_revoked')).toMatchObject({ client_id: clientId, subject: 'carol', reason: 'cli' });

    // Again: says so, and writes nothing (no second "revoked" row, U not called again).
    const rows = (await auditEvents(stack.app)).length;
    const upstreamCalls = stack.upstream.revocations.length;
    const again = capture();
    expect(await run(['consents', 'revoke', String(consent.id)], again)).toBe(0);
    expect(again.stdout).toEqual([expect.stringMatching(new RegExp(`^consent ${consent.id} \\(carol → ${clientId}\\) was already revoked at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(cli\\)$`))]);
    expect((await auditEvents(stack.app)).length).toBe(rows);
    expect(stack.upstream.revocations.length).toBe(upstreamCalls);

    // A list cut at --limit says so on stderr; stdout stays the list.
    const cut = capture();
    expect(await run(['consents', 'list', '--all', '--limit', '1', '--json'], cut)).toBe(0);
    expect(JSON.parse(cut.stdout[0] as string)).toHaveLength(1);
    expect(cut.stderr).toEqual(['showing the first 1; there may be more (--limit N to see more)']);
    const whole = capture();
    expect(await run(['clients', 'list', '--limit', '1000', '--json'], whole)).toBe(0);
    expect(whole.stderr).toEqual([]);
    const cutClients = capture();
    expect(await run(['clients', 'list', '--limit', '1'], cutClients)).toBe(0);
    expect(cutClients.stderr).toEqual(['showing the first 1; there may be more (--limit N to see more)']);

    const missing = capture();
    expect(await run(['consents', 'revoke', '999999'], missing)).toBe(1);
    expect(missing.stderr[0]).toBe('no consent 999999');
    expect(await run(['consents', 'revoke', 'abc'], capture())).toBe(2);
    expect(await run(['consents', 'revoke'], capture())).toBe(2);
  });

  it('lists, disables (refusing new authorizations) and deletes clients', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'dave', register: { client_name: 'To Disable' } });
    const list = capture();
    expect(await run(['clients', 'list', '--search', 'To Disable', '--json'], list)).toBe(0);
    expect(JSON.parse(list.stdout[0] as string)).toEqual([expect.objectContaining({ client_id: clientId, client_name: 'To Disable', active_consents: 1, status: 'active', redirect_hosts: '127.0.0.1:33418' })]);

    const disable = capture();
    expect(await run(['clients', 'disable', clientId], disable)).toBe(0);
    expect(disable.stdout[0]).toBe(`disabled ${clientId}; revoked 1 consent(s)`);
    expect((await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(401);
    const authorize = await fetch(`${stack.app.url}/authorize?client_id=${clientId}&response_type=code&redirect_uri=${encodeURIComponent('http://127.0.0.1:33418/callback')}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`, { redirect: 'manual' });
    expect(authorize.status).toBe(400);
    expect(authorize.headers.get('location')).toBeNull();
    // Unknown to the provider at the token endpoint too (the adapter's one read, src/store/oidc-models.ts findClientUnlessDisabled).
    expect(await refresh(stack.app, clientId, tokens.body.refresh_token)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    const disabled = capture();
    await run(['clients', 'list', '--disabled', '--json'], disabled);
    expect(JSON.parse(disabled.stdout[0] as string).map((c: { client_id: string }) => c.client_id)).toContain(clientId);

    expect(await run(['clients', 'enable', clientId], capture())).toBe(0);
    const again = await fetch(authorize.url, { redirect: 'manual' });
    expect(again.status, 'known again once enabled').toBe(303);
    const del = capture();
    expect(await run(['clients', 'delete', clientId], del)).toBe(0);
    expect(del.stdout[0]).toBe(`deleted ${clientId}; revoked 0 consent(s)`);
    expect(await run(['clients', 'delete', clientId], capture())).toBe(1);
    const events = (await auditEvents(stack.app)).filter((e) => e.client_id === clientId).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['cli.client_disabled', 'cli.client_enabled', 'cli.client_deleted']));
  });

  it("refuses another SECRET_KEY than the server's before writing anything (its audit rows would never verify)", async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'erin', register: { client_name: 'Wrong Key Target' } });
    const list = capture();
    expect(await run(['consents', 'list', '--client', clientId, '--json'], list)).toBe(0);
    const [consent] = JSON.parse(list.stdout[0] as string);
    const rowsBefore = (await auditEvents(stack.app)).length;
    const upstreamRevocations = stack.upstream.revocations.length;
    const otherKey = Buffer.alloc(32, 9).toString('base64');
    expect(otherKey).not.toBe(TEST_SECRET_KEY);
    for (const args of [['consents', 'revoke', String(consent.id)], ['clients', 'disable', clientId], ['consents', 'list']]) {
      const wrong = { ...capture(), env: { ...env, SECRET_KEY: otherKey } };
      expect(await run(args, wrong), args.join(' ')).toBe(1);
      expect(wrong.stderr).toEqual([expect.stringMatching(/^this SECRET_KEY is not the one the server's data was made with \(the server's sealed signing keys do not open with it\)/)]);
      expect(wrong.stdout).toEqual([]);
    }
    // Nor with the server's key as SECRET_KEY_PREVIOUS: the rows would still be MAC'd with the foreign current key (found by review).
    const behind = { ...capture(), env: { ...env, SECRET_KEY: otherKey, SECRET_KEY_PREVIOUS: TEST_SECRET_KEY } };
    expect(await run(['consents', 'revoke', String(consent.id)], behind)).toBe(1);
    expect(behind.stderr).toEqual([expect.stringMatching(/^this SECRET_KEY is not the one the server's data was made with \(the audit log's last row was made with audit key \w+, this process's key is \w+\)/)]);
    // Nothing happened: no audit row, the consent and the client stand, the token still works.
    expect((await auditEvents(stack.app)).length).toBe(rowsBefore);
    const after = capture();
    expect(await run(['consents', 'list', '--client', clientId, '--json'], after)).toBe(0);
    expect(JSON.parse(after.stdout[0] as string)).toEqual([expect.objectContaining({ id: consent.id, status: 'active' })]);
    expect((await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(200);
    expect(stack.upstream.revocations.length).toBe(upstreamRevocations);

    // A sealed value the server does not open at every start (the demo IdP's keys) may rightly stay
    // under a retired key after a rotation: it does not stop the CLI run with the server's key.
    const retired = new KeyRing(Buffer.from(otherKey, 'base64'));
    await stack.app.runtime.sql.run('INSERT INTO sealed_secrets (name, sealed, created_at) VALUES (?, ?, ?)', ['demo-idp-jwks', retired.seal('{"keys":[]}', 'secret:demo-idp-jwks'), Date.now()]);
    try {
      const right = capture();
      expect(await run(['consents', 'list', '--client', clientId], right), right.stderr.join('\n')).toBe(0);
    } finally {
      await stack.app.runtime.sql.run('DELETE FROM sealed_secrets WHERE name = ?', ['demo-idp-jwks']);
    }
  });

  it('prints help for every command and refuses unknown flags', async () => {
    for (const cmd of [['clients', 'list'], ['clients', 'disable'], ['consents', 'list'], ['consents', 'revoke']]) {
      const help = capture();
      expect(await run([...cmd, '--help'], help)).toBe(0);
      expect(help.stdout[0]).toContain(`usage: mcp-consent-proxy ${cmd.join(' ')}`);
    }
    const bad = capture();
    expect(await run(['clients', 'list', '--colour'], bad)).toBe(2);
    expect(bad.stderr[0]).toMatch(/Unknown option '--colour'/);
  });
});
