/**
 * MCP_TOOL_SCOPES (GW-15) and the header rules (GW-16) as pure decisions: the configuration
 * refuses a scope outside MCP_SCOPES by name; which bodies are read; the challenge's scope set;
 * the Base64 sentinel; the minimal set of scopes and the step-up scopes a registration may reach.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { createToolPolicy } from '../../src/gateway/tool-policy.js';
import { decodeHeaderValue, headerMismatch } from '../../src/gateway/mcp-headers.js';
import { baselineScopes, describeScope, stepUpScopes } from '../../src/oauth/scopes.js';
import { admitRegistration } from '../../src/oauth/admission.js';

const UPSTREAM = { UPSTREAM_ISSUER: 'https://idp.example.com', UPSTREAM_CLIENT_ID: 'proxy', UPSTREAM_CLIENT_SECRET: 's', MCP_UPSTREAM_URL: 'https://mcp.internal.example.com/mcp' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('MCP_TOOL_SCOPES configuration', () => {
  it('parses tool=scope pairs (a tool listed twice needs both); none by default', () => {
    expect(loadConfig({ ...UPSTREAM }).toolScopes).toEqual([]);
    const config = loadConfig({ ...UPSTREAM, MCP_SCOPES: 'mcp:tools mcp:admin mcp:write', MCP_TOOL_SCOPES: 'delete_repo=mcp:admin, delete_repo=mcp:write,push=mcp:write' });
    expect(config.toolScopes).toEqual([
      { tool: 'delete_repo', scope: 'mcp:admin' },
      { tool: 'delete_repo', scope: 'mcp:write' },
      { tool: 'push', scope: 'mcp:write' },
    ]);
  });

  it('names a scope that is not one of MCP_SCOPES, and refuses malformed entries', () => {
    expect(problemsOf({ ...UPSTREAM, MCP_TOOL_SCOPES: 'delete_repo=mcp:admin' })).toEqual(['MCP_TOOL_SCOPES: scope mcp:admin (for tool delete_repo) is not one of MCP_SCOPES']);
    for (const bad of ['delete_repo', '=mcp:tools', 'a b=mcp:tools', 'tool/x=mcp:tools', 'x=bad"scope']) {
      expect(problemsOf({ ...UPSTREAM, MCP_TOOL_SCOPES: bad })[0], bad).toMatch(/^MCP_TOOL_SCOPES: has an invalid entry/);
    }
  });
});

const req = (method: string, headers: Record<string, string> = {}) => ({ method, headers }) as unknown as IncomingMessage;
const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const call = (name: string) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });

describe('tool policy', () => {
  const policy = createToolPolicy([{ tool: 'rm', scope: 'mcp:admin' }], 'mcp:tools');

  it('judges no body without a policy, and every POST with one, whatever Mcp-Method says', () => {
    expect(createToolPolicy([], 'mcp:tools').judges(req('POST'))).toBe(false);
    expect(policy.judges(req('GET'))).toBe(false);
    expect(policy.judges(req('DELETE'))).toBe(false);
    expect(policy.judges(req('POST'))).toBe(true);
    expect(policy.judges(req('POST', { 'mcp-method': 'tools/list', 'mcp-protocol-version': '2026-07-28' }))).toBe(true); // not delegated to R's header check (fail closed)
    expect(policy.judges(req('POST', { 'mcp-method': 'tools/call', 'mcp-protocol-version': '2026-07-28' }))).toBe(true);
    expect(policy.judges(req('POST', { 'mcp-method': 'tools/list', 'mcp-protocol-version': '2025-11-25' }))).toBe(true);
    expect(policy.judges(req('POST', { 'mcp-method': 'tools/list' }))).toBe(true);
  });

  it("challenges with every scope the call needs, the token's included; unlisted tools and other methods pass", () => {
    const verdict = policy.decide(body(call('rm')), {}, new Set(['mcp:tools']));
    expect(verdict).toMatchObject({ ok: false, status: 403, needed: ['mcp:tools', 'mcp:admin'], details: { tools: ['rm'], missing: ['mcp:admin'] } });
    expect(policy.decide(body(call('rm')), {}, new Set(['mcp:tools', 'mcp:admin']))).toEqual({ ok: true, tools: ['rm'] });
    expect(policy.decide(body(call('ls')), {}, new Set(['mcp:tools']))).toEqual({ ok: true, tools: ['ls'] });
    // What an allowed body calls is named in its gateway.forwarded row: each tool once, at most AUDITED_TOOLS, each cut at 100 characters.
    const many = Array.from({ length: 30 }, (_, i) => call(`t${i}`));
    expect((policy.decide(body([...many, call('t0'), call('x'.repeat(300))]), {}, new Set(['mcp:tools'])) as { tools: string[] }).tools).toEqual(many.slice(0, 20).map((m) => m.params.name));
    expect((policy.decide(body([call('x'.repeat(300))]), {}, new Set(['mcp:tools'])) as { tools: string[] }).tools).toEqual(['x'.repeat(100)]);
    expect(policy.decide(body({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), {}, new Set())).toEqual({ ok: true });
    expect(policy.decide(body([call('ls'), call('rm')]), {}, new Set(['mcp:tools']))).toMatchObject({ status: 403 });
    expect(policy.decide(Buffer.from('{"method":"tools/call",'), {}, new Set())).toMatchObject({ status: 400, code: -32700 });
  });
});

describe('MCP request-metadata headers', () => {
  it('refuses an MCP-Protocol-Version that is not one revision date (two headers joined), which would switch the 2026-07-28 checks off (review 2026-12-06)', () => {
    const message = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'rm' } };
    expect(headerMismatch({ 'mcp-protocol-version': '2026-07-28, 2026-07-28' }, [message])).toBe('the MCP-Protocol-Version header is not one protocol revision');
    expect(headerMismatch({ 'mcp-protocol-version': '2026-07-28' }, [message])).toBe('the Mcp-Method header is missing');
    expect(headerMismatch({ 'mcp-protocol-version': '2025-06-18' }, [message])).toBeUndefined();
  });

  it('decodes the Base64 sentinel and refuses invalid values', () => {
    expect(decodeHeaderValue('get_weather')).toBe('get_weather');
    expect(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?=')).toBe('Hello, 世界');
    expect(decodeHeaderValue('=?base64?!!?=')).toBe('=?base64?!!?='); // not the sentinel's alphabet: a plain value
    expect(decodeHeaderValue('=?base64?/w==?=')).toBeUndefined(); // not UTF-8
    expect(decodeHeaderValue('caf\u00e9')).toBeUndefined();
  });

  it('matches Mcp-Name against params.name or params.uri, by method', () => {
    const era = { 'mcp-protocol-version': '2026-07-28' };
    expect(headerMismatch({ ...era, 'mcp-method': 'resources/read', 'mcp-name': 'file:///a' }, [{ method: 'resources/read', params: { uri: 'file:///a' } }])).toBeUndefined();
    expect(headerMismatch({ ...era, 'mcp-method': 'prompts/get', 'mcp-name': 'p' }, [{ method: 'prompts/get', params: { name: 'p' } }])).toBeUndefined();
    expect(headerMismatch({ ...era, 'mcp-method': 'tools/list', 'mcp-name': 'x' }, [{ method: 'tools/list' }])).toBe('the Mcp-Name header does not match the body');
    expect(headerMismatch({ ...era, 'mcp-method': 'tools/list' }, [{ method: 'tools/list' }])).toBeUndefined();
    expect(headerMismatch({}, [{ method: 'tools/call', params: { name: 'x' } }])).toBeUndefined();
  });
});

describe('the minimal set and step-up scopes (DISC-04, GW-15)', () => {
  const config = {
    mcpScopes: ['mcp:tools', 'mcp:read', 'mcp:admin'],
    toolScopes: [
      { tool: 'rm', scope: 'mcp:admin' },
      { tool: 'ls', scope: 'mcp:tools' },
    ],
  };

  it('leaves the step-up-only scopes out of the minimal set; the route scope is never step-up', () => {
    expect(stepUpScopes(config)).toEqual(['mcp:admin']);
    expect(baselineScopes(config)).toEqual(['mcp:tools', 'mcp:read']);
    expect(baselineScopes({ ...config, toolScopes: [] })).toEqual(config.mcpScopes);
  });

  it('lets a client registered with the minimal set reach the step-up scopes', () => {
    const policy = { redirectSchemes: [], supportedScopes: ['openid', 'offline_access', ...config.mcpScopes], stepUpScopes: stepUpScopes(config) };
    const admitted = admitRegistration({ redirect_uris: ['http://127.0.0.1:9/cb'], scope: 'mcp:tools offline_access' }, policy);
    expect(admitted.ok && admitted.metadata.scope).toBe('mcp:tools offline_access mcp:admin');
  });
});

describe('a tool scope on the consent page (CONS-06)', () => {
  it('names the tools a scope is needed for, each once, at most ten and the rest counted; other scopes as before', () => {
    const pairs = [
      { tool: 'delete_repo', scope: 'mcp:admin' },
      { tool: 'delete_repo', scope: 'mcp:admin' },
      { tool: 'echo', scope: 'mcp:write' },
    ];
    expect(describeScope('mcp:admin', pairs)).toBe('Access granted under the scope “mcp:admin”. Needed to call these tools on your behalf: delete_repo');
    expect(describeScope('mcp:tools', pairs)).toBe('Use the tools of the MCP server on your behalf');
    const many = Array.from({ length: 12 }, (_, i) => ({ tool: `t${i}`, scope: 'mcp:admin' }));
    expect(describeScope('mcp:admin', many)).toBe('Access granted under the scope “mcp:admin”. Needed to call these tools on your behalf: t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 and 2 more');
  });
});
