/**
 * Found by the failing-dependency suite (issue 13 §3): gateway audit records wait for their group
 * commit (src/audit/audit.ts, at most 200 ms); when that commit met a database locked by another
 * writer past SQLite's busy timeout, the records were dropped (only an error line said so). They
 * are now kept and committed with the next commit, in order, the chain intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../helpers/engine.js';
import { registerClient } from '../helpers/app.js';
import { auditHead, auditRowsSince } from '../helpers/db-probe.js';
import { mcpPost, openSession } from '../helpers/mcp-http.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { startFaultStack, toCallback, type FaultStack, whileSqliteLocked } from './fault-stack.js';

let stack: FaultStack;
let clientId: string;
beforeAll(async () => {
  if (onPostgres) return;
  stack = await startFaultStack();
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack?.close());

// SQLite's own lock (another writer past busy_timeout); PostgreSQL's counterpart, the server
// restarting mid-load: test/faults/postgres-restart.pg.test.ts.
describe.skipIf(onPostgres)('audit queue kept when busy', () => {
  it('gateway records queued when the group commit meets a locked database are committed later, not dropped', async () => {
    const browser = new Browser('busy-gateway');
    const { callback, auth } = await toCallback(stack, browser, clientId);
    const code = (await drive(browser, callback, auth.redirectUri)).callback.searchParams.get('code') as string;
    const token = (await redeem(stack.app, clientId, code, auth.verifier)).body.access_token as string;
    const mcp = `${stack.app.url}/mcp`;
    const session = await openSession(mcp, token);
    const from = await auditHead(stack.app);
    const calls = 3;
    for (let i = 0; i < calls; i++) expect((await mcpPost(mcp, token, { jsonrpc: '2.0', id: i, method: 'tools/list' }, { 'mcp-session-id': session })).status).toBe(200);
    await whileSqliteLocked(stack, async () => stack.app.runtime.audit.flush()); // the commit fails after the busy timeout
    const rows = await auditRowsSince(stack.app, from); // committed now, with the lock released
    expect(rows.filter((r) => r.event === 'gateway.forwarded')).toHaveLength(calls);
  });
});
