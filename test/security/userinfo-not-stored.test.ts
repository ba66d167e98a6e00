/**
 * SEC-02 (review 2026-12-08): a password in a URL's userinfo is never kept. The audit log is
 * append-only, so a refused redirect URI (`https://alice:hunter2@app.example/cb`), a CIMD
 * client_id URL with userinfo, or a metadata document's redirect URI with userinfo, written
 * verbatim into an error description, a `cimd.refused` detail or the client_id column, stayed
 * there for ever. Every string of an audit row now has the userinfo of any URL in it replaced
 * (`https://***@host`, src/audit/audit.ts); the refusal rows are still written, and the error
 * description sent back to the client does not echo the password either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { buildAuthorization } from '../helpers/stack.js';

let docs: Listener;
let app: TestApp;

beforeAll(async () => {
  docs = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${docs.port}${req.url}`, client_name: 'x', redirect_uris: ['https://carol:hunter5@app.example/cb'] }));
  });
  app = await startTestApp({ env: { CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
});

afterAll(async () => {
  await app?.close();
  await docs?.close();
});

async function stored(): Promise<string> {
  await app.runtime.audit.flush();
  return JSON.stringify(await rows(app, 'SELECT * FROM audit_log'));
}

async function register(redirectUri: string) {
  const res = await fetch(`${app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [redirectUri], client_name: 'x' }) });
  return { status: res.status, body: (await res.json()) as { error: string; error_description: string } };
}

async function authorize(clientId: string) {
  const res = await fetch(buildAuthorization(app, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });
  return { status: res.status, html: await res.text() };
}

describe('no URL password in the audit log', () => {
  it('a redirect URI with a password, refused at /register for its userinfo or for another reason: 400, refusal audited, the password nowhere', async () => {
    const userinfo = await register('https://alice:hunter2@app.example/cb');
    expect(userinfo.status).toBe(400);
    expect(userinfo.body).toMatchObject({ error: 'invalid_redirect_uri' });
    expect(userinfo.body.error_description).toContain('https://***@app.example/cb');
    const fragment = await register('https://bob:hunter3@app.example/cb#x'); // refused for its fragment, before userinfo is looked at
    expect(fragment.status).toBe(400);
    expect(JSON.stringify([userinfo.body, fragment.body])).not.toMatch(/hunter/);
    const events = (await auditEvents(app)).filter((e) => e.event === 'registration.rejected');
    expect(events.map((e) => e.reason)).toEqual(['invalid_redirect_uri:userinfo', 'invalid_redirect_uri:fragment']);
    expect(events[0]?.details).toContain('https://***@app.example/cb');
    const audit = await stored();
    expect(audit).not.toContain('hunter2');
    expect(audit).not.toContain('hunter3');
  });

  it('a CIMD client_id URL with a password: refused at /authorize, audited under the client_id without it', async () => {
    const refused = await authorize(`https://dave:hunter4@client.example/client.json`);
    expect(refused.status).toBe(400);
    expect(refused.html).not.toContain('hunter4');
    const events = (await auditEvents(app)).filter((e) => e.event === 'cimd.refused' && e.reason === 'userinfo');
    expect(events.map((e) => e.client_id)).toEqual(['https://***@client.example/client.json']);
    expect(await stored()).not.toContain('hunter4');
  });

  it('a CIMD client_id whose password runs past the audit cut (its `@` beyond 200 characters): masked before the cut, not stored bare', async () => {
    const password = `hunter6${'p'.repeat(240)}`;
    const refused = await authorize(`https://dave:${password}@client.example/client.json`);
    expect(refused.status).toBe(400);
    const events = (await auditEvents(app)).filter((e) => e.event === 'cimd.refused' && e.reason === 'userinfo');
    expect(events.at(-1)?.client_id).toBe('https://***@client.example/client.json');
    expect(await stored()).not.toContain('hunter6');
  });

  it("a CIMD document's redirect URI with a password: refused, its detail audited without it", async () => {
    const refused = await authorize(`http://127.0.0.1:${docs.port}/client.json`);
    expect(refused.status).toBe(400);
    expect(refused.html).not.toContain('hunter5');
    const events = (await auditEvents(app)).filter((e) => e.event === 'cimd.refused' && e.reason === 'redirect_uri');
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toContain('https://***@app.example/cb');
    expect(await stored()).not.toContain('hunter5');
    expect(app.logLines.join('\n')).not.toMatch(/hunter[2-5]/);
  });
});
