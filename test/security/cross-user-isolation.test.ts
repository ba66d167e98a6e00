/**
 * AT-15 cross-user isolation (GW-09, UP-08): two users through the same client_id; every
 * upstream call carries the calling user's U token, and one user's MCP session id is useless
 * with the other's token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { registerClient } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('AT-15 two users, one client', () => {
  it('keeps 100 interleaved calls on each user\'s own upstream token, and refuses a foreign session', async () => {
    const clientId = (await registerClient(stack.app)).client_id as string;
    const alice = await authorizeClient(stack, new Browser('alice'), { login: 'alice', clientId });
    const bob = await authorizeClient(stack, new Browser('bob'), { login: 'bob', clientId });
    const mcp = `${stack.app.url}/mcp`;
    const users = [
      { name: 'alice', token: alice.tokens.body.access_token as string, session: await openSession(mcp, alice.tokens.body.access_token) },
      { name: 'bob', token: bob.tokens.body.access_token as string, session: await openSession(mcp, bob.tokens.body.access_token) },
    ];
    const expected = Object.fromEntries(users.map((u) => [u.name, sha(stack.upstream.issued.filter((t) => t.sub === u.name).at(-1)?.token as string)]));
    const calls = Array.from({ length: 100 }, (_, i) => users[i % 2] as (typeof users)[number]);
    const results = await Promise.all(calls.map((u, i) => callTool(mcp, u.token, u.session, 'whoami', {}, 1000 + i).then((r) => ({ u, r }))));
    for (const { u, r } of results) {
      expect(r.status).toBe(200);
      expect(r.messages[0].result.structuredContent).toEqual({ upstream_user: u.name, upstream_token_sha256: expected[u.name] });
    }
    const before = stack.mcp.received.length;
    const hijack = await callTool(mcp, users[1]?.token as string, users[0]?.session as string, 'whoami');
    expect(hijack.status).toBe(404);
    expect(stack.mcp.received.length).toBe(before);
  });
});
