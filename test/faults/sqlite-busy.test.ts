/**
 * Found by the failing-dependency suite (issue 13 §3): a database locked by another writer (the
 * CLI, a backup) past SQLite's busy timeout (5 s, src/db/open.ts) made every write answer 500
 * "unexpected error", logged with a stack as a bug. Now:
 *   - the request is answered 503 `temporarily_unavailable` with `Retry-After: 1`, within the
 *     busy timeout and a little, JSON at the provider's endpoints and a page in the browser
 *     (src/errors/database-unavailable.ts `isDatabaseBusy`), logged as a warning;
 *   - nothing is half-written: the request's transaction rolled back — no client, no consent, no
 *     token, the upstream transaction not consumed — so the same request succeeds once the lock
 *     is released.
 * At the gateway (async stores, issue 11): a request that needs no write is forwarded at once (the
 * last-use bookkeeping does not wait: Sql.runIfFree); a session binding that cannot be written
 * fails closed (the id is unknown afterwards, GW-09).
 * The group-committed audit records: test/faults/audit-queue-kept-when-busy.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../helpers/engine.js';
import { mcpClientMetadata, registerClient } from '../helpers/app.js';
import { rowCounts } from '../helpers/db-probe.js';
import { mcpPost, openSession } from '../helpers/mcp-http.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { startFaultStack, timed, toCallback, type FaultStack, whileSqliteLocked } from './fault-stack.js';

const BUSY_TIMEOUT_MS = 5000;
let stack: FaultStack;
let clientId: string;
beforeAll(async () => {
  if (onPostgres) return;
  stack = await startFaultStack();
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack?.close());

// A locked database is an outage, not a bug: every line about it is a warning (failureLevel).
const errorLines = () => stack.app.logLines.filter((l) => /"level":(50|60)/.test(l)).length;

// SQLite's own lock (another writer past busy_timeout); PostgreSQL's counterpart, the server
// restarting mid-load: test/faults/postgres-restart.pg.test.ts.
describe.skipIf(onPostgres)('sqlite busy', () => {
  it('POST /register while the database is locked: 503 temporarily_unavailable with Retry-After within the busy timeout, no client; then 201', async () => {
    const before = await rowCounts(stack.app);
    const errors = errorLines();
    const { value: res, ms } = await whileSqliteLocked(stack, () =>
      timed(() => fetch(`${stack.app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mcpClientMetadata()) })),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'The service is busy; try again in a moment.' });
    expect(ms).toBeLessThan(BUSY_TIMEOUT_MS + 1500);
    expect(await rowCounts(stack.app)).toEqual(before);
    expect(errorLines()).toBe(errors);
    expect((await registerClient(stack.app)).client_id).toBeTruthy();
  });

  it("U's redirect back while the database is locked: a 503 page, nothing half-written, and the same callback succeeds after", async () => {
    const browser = new Browser('busy-callback');
    const { callback, auth } = await toCallback(stack, browser, clientId);
    const before = await rowCounts(stack.app);
    const { value: page, ms } = await whileSqliteLocked(stack, () => timed(() => browser.navigate(callback, { initiator: stack.upstream.issuer })));
    expect(page.status).toBe(503);
    expect(page.headers.get('retry-after')).toBe('1');
    expect(page.html).toContain('Temporarily unavailable');
    expect(ms).toBeLessThan(BUSY_TIMEOUT_MS + 1500);
    expect(await rowCounts(stack.app), 'no consent, grant, token; the upstream transaction not consumed').toEqual(before);
    const result = await drive(browser, callback, auth.redirectUri);
    const code = result.callback.searchParams.get('code') as string;
    expect(code).toBeTruthy();
    expect((await redeem(stack.app, clientId, code, auth.verifier)).status).toBe(200);
  });

  /** A fresh grant's access token (its first gateway use is still to come). */
  async function freshToken(name: string): Promise<string> {
    const browser = new Browser(name);
    const { callback, auth } = await toCallback(stack, browser, clientId);
    const code = (await drive(browser, callback, auth.redirectUri)).callback.searchParams.get('code') as string;
    return (await redeem(stack.app, clientId, code, auth.verifier)).body.access_token as string;
  }

  it("a gateway request that needs no write (the first use of a grant, no new session) while the database is locked: forwarded at once — the last-use bookkeeping does not wait for the lock", async () => {
    const token = await freshToken('busy-touch');
    const mcp = `${stack.app.url}/mcp`;
    const received = stack.mcp.received.length;
    const { value: res, ms } = await whileSqliteLocked(stack, () => timed(() => mcpPost(mcp, token, { jsonrpc: '2.0', id: 1, method: 'tools/list' })));
    expect(res.status).not.toBe(503);
    expect(ms, 'not held for the busy timeout').toBeLessThan(BUSY_TIMEOUT_MS);
    expect(stack.mcp.received.length).toBe(received + 1);
    expect((await openSession(mcp, token)).length).toBeGreaterThan(0);
  });

  it('a gateway request whose session binding cannot be written (R opens a session, GW-09) while the database is locked: R\'s answer is streamed, the unbound session id fails closed (404, R not asked), and a new session works once the lock is gone', async () => {
    const token = await freshToken('busy-binding');
    const mcp = `${stack.app.url}/mcp`;
    const { value: res, ms } = await whileSqliteLocked(stack, () =>
      timed(() => mcpPost(mcp, token, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'busy', version: '1' } } })),
    );
    expect(res.status).toBe(200);
    // Each write that meets the lock (the binding, the audit group commit) waits out the busy timeout.
    expect(ms).toBeLessThan(2 * BUSY_TIMEOUT_MS + 1500);
    const unbound = res.headers.get('mcp-session-id') as string;
    expect(unbound).toBeTruthy();
    const received = stack.mcp.received.length;
    const reuse = await mcpPost(mcp, token, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': unbound });
    expect(reuse.status, 'a session id that was never bound is unknown').toBe(404);
    expect(stack.mcp.received.length, 'R not asked').toBe(received);
    expect((await openSession(mcp, token)).length).toBeGreaterThan(0);
  });
});
