/**
 * DESIGN §8, SECURITY.md "Revocation is immediate on every replica": a revocation committed on
 * one replica fails the next gateway request on every replica that starts after the revoking
 * response was received. Two runtimes ("replicas") share one database — PostgreSQL with
 * TEST_ENGINE=postgres (test/helpers/engine.ts), else one SQLite file (the server and the CLI) —
 * and each keeps its own in-process gateway cache: the per-request generation read is what
 * invalidates it. On PostgreSQL that read is shared between concurrent requests, but a request
 * only ever uses a read issued after it arrived (src/gateway/generation.ts, unit-tested in
 * test/unit/gateway-generation.test.ts): here under a steady stream of requests in flight on the
 * other replica while the revocation commits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { Browser, authorizeClient, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';

let stack: Stack;
/** the second replica: same database, same SECRET_KEY, its own process state */
let other: TestApp;

beforeAll(async () => {
  stack = await startStack();
  // The load below sends hundreds of refused requests from one address: answered 401, not 429.
  other = await startReplica(stack, { RATE_LIMIT_REJECTED: '1000000/1m' });
});
afterAll(async () => {
  await other?.close();
  await stack?.close();
});

/** A grant, its token and an MCP session, made through replica A. */
async function grant(login: string) {
  const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login });
  const token = tokens.body.access_token as string;
  const sessionId = await openSession(`${stack.app.url}/mcp`, token);
  return { token, clientId, sessionId };
}

describe('a revocation committed on one replica fails the next gateway request on every replica', () => {
  it('revoked on replica A (admin action): the next request on replica B is 401, though B served the token a moment before', async () => {
    const { token, clientId, sessionId } = await grant('alice');
    const onB = () => callTool(`${other.url}/mcp`, token, sessionId, 'whoami');
    expect((await onB()).status).toBe(200);
    expect((await onB()).status).toBe(200); // B's cache now holds the token's facts
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    await stack.app.runtime.ops.revokeConsent(consent?.id as number, { actor: 'admin', subject: 'root' });
    const before = stack.mcp.received.length;
    expect((await onB()).status).toBe(401);
    expect(stack.mcp.received.length).toBe(before);
  });

  it('holds under load: with requests in flight on B the whole time, every request B receives after the revocation returned is refused', async () => {
    const { token, clientId, sessionId } = await grant('bob');
    const onB = () => callTool(`${other.url}/mcp`, token, sessionId, 'whoami');
    let revoked = false;
    let running = true;
    const lateAnswers: number[] = [];
    // Eight clients hammering B, each starting its next request as soon as one returns.
    const load = Array.from({ length: 8 }, async () => {
      for (let i = 0; running && i < 10_000; i++) {
        const startedAfterRevocation = revoked;
        const res = await onB();
        if (startedAfterRevocation) lateAnswers.push(res.status);
      }
    });
    try {
      for (let i = 0; i < 20; i++) expect((await onB()).status).toBe(200); // B serves it, from its cache
      const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
      await stack.app.runtime.ops.revokeConsent(consent?.id as number, { actor: 'admin', subject: 'root' });
      revoked = true;
      for (let i = 0; i < 20; i++) expect((await onB()).status).toBe(401);
    } finally {
      running = false;
      await Promise.all(load);
    }
    expect(lateAnswers.length).toBeGreaterThan(0);
    expect(lateAnswers.every((status) => status === 401)).toBe(true);
  }, 60_000);
});
