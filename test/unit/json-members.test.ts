/**
 * Member names that let two JSON parsers read one body two ways (src/gateway/json-members.ts;
 * RFC 8259 §4), and the tool policy's refusal of them (GW-15; found by review, 2026-12-06: a body
 * with `"name"` twice was judged by its last value, and a parser that keeps the first — or that
 * matches names ignoring case — runs another tool).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ambiguousMember } from '../../src/gateway/json-members.js';
import { createToolPolicy } from '../../src/gateway/tool-policy.js';

const policy = createToolPolicy([{ tool: 'rm', scope: 'mcp:admin' }], 'mcp:tools', ['mcp:tools', 'mcp:admin']);
const tools = new Set(['mcp:tools']);

describe('ambiguous member names', () => {
  it('finds a name twice in one object, at any depth and after unescaping', () => {
    expect(ambiguousMember('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","name":"ls"}}')).toMatch(/"name" appears twice/);
    expect(ambiguousMember('{"method":"tools/call","params":{"n\\u0061me":"rm","name":"ls"}}')).toMatch(/"name" appears twice/);
    expect(ambiguousMember('{"method":"x","method":"tools/call"}')).toMatch(/"method" appears twice/);
    expect(ambiguousMember('[{"id":1},{"params":{"arguments":{"a":{"b":1,"b":2}}}}]')).toMatch(/"b" appears twice/);
  });

  it('finds names equal ignoring case in a message or its params, and a case variant of a member P reads', () => {
    expect(ambiguousMember('{"method":"tools/call","params":{"name":"ls","NAME":"rm"}}')).toMatch(/ignoring case/);
    expect(ambiguousMember('[{"method":"a"},{"method":"tools/call","Method":"x"}]')).toMatch(/ignoring case/);
    expect(ambiguousMember('{"Method":"tools/call","params":{"name":"rm"}}')).toMatch(/"Method" differs from "method"/);
    expect(ambiguousMember('{"method":"tools/call","PARAMS":{"name":"rm"}}')).toMatch(/"PARAMS" differs/);
    expect(ambiguousMember('{"method":"tools/call","params":{"Name":"rm"}}')).toMatch(/"Name" differs/);
    expect(ambiguousMember('{"method":"resources/read","params":{"URI":"file:///x"}}')).toMatch(/"URI" differs/);
    // Folded both ways: the long s (ſ) upper-cases to S.
    expect(ambiguousMember('{"method":"tools/call","params":{"ſ":1,"s":2}}')).toMatch(/ignoring case/);
  });

  it('finds U+0000 in an envelope name or in method, params.name, params.uri, and __proto__ anywhere (review 2026-12-06: each allowed, and read as another tool by a C-string or prototype-setting parser)', () => {
    expect(ambiguousMember('{"method":"tools/call","params":{"name\\u0000":"rm","name":"ls"}}')).toMatch(/U\+0000/);
    expect(ambiguousMember('{"method":"tools/call","params":{"name":"rm\\u0000"}}')).toMatch(/"name" contains U\+0000/);
    expect(ambiguousMember('{"method":"tools/call\\u0000x","params":{"name":"rm"}}')).toMatch(/"method" contains U\+0000/);
    expect(ambiguousMember('{"method":"resources/read","params":{"uri":"file:///a\\u0000b"}}')).toMatch(/"uri" contains U\+0000/);
    expect(ambiguousMember('{"method":"tools/call","params":{"__proto__":{"name":"rm"}}}')).toMatch(/__proto__/);
    expect(ambiguousMember('{"method":"tools/call","params":{"name":"ls","arguments":{"x":{"__proto\\u005f_":1}}}}')).toMatch(/__proto__/);
    // Deeper values may carry U+0000 (tool arguments are the tool's business).
    expect(ambiguousMember('{"method":"tools/call","params":{"name":"ls","arguments":{"text":"a\\u0000b"}}}')).toBeUndefined();
  });

  it('scans a body nested a million levels deep within a 128 MB heap (review 2026-12-06: a Set per level cost ~865 MB for 4 MB and ended a capped process)', () => {
    // In a child process with its heap capped: the scan must finish there (the old scan died of "heap out of memory").
    const module = fileURLToPath(new URL('../../src/gateway/json-members.ts', import.meta.url));
    const script = `import(${JSON.stringify(module)}).then((m) => { const d = 1000000; const o = 100000; process.stdout.write(String(m.ambiguousMember('['.repeat(d) + ']'.repeat(d))) + ' ' + String(m.ambiguousMember('{"a":'.repeat(o) + '1' + '}'.repeat(o)))); })`;
    const out = spawnSync(process.execPath, ['--max-old-space-size=128', '--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(out.stderr).not.toMatch(/heap out of memory/);
    expect(out.status).toBe(0);
    expect(out.stdout).toBe('undefined undefined');
    expect(ambiguousMember('['.repeat(1000) + '{"a":1,"a":2}' + ']'.repeat(1000))).toMatch(/"a" appears twice/);
  });

  it('passes ordinary messages, values that look like names, and arguments that differ in case', () => {
    const ok = [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"Path":"a","path":"b"},"_meta":{"progressToken":1}}}',
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}',
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]',
      '{"method":"tools/call","params":{"name":"name","arguments":{"q":"\\"name\\":\\"rm\\",","list":["name","name"]}}}',
      '{"a":{"x":1},"b":{"x":1}}',
      '"just a string"',
      '[]',
    ];
    for (const text of ok) expect(ambiguousMember(text), text).toBeUndefined();
  });

  it('the tool policy refuses such a body with 400 (-32600) before judging it, and a body that is not UTF-8', () => {
    const refused = policy.decide(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","name":"ls"}}'), {}, tools);
    expect(refused).toMatchObject({ ok: false, status: 400, reason: 'ambiguous_json', code: -32600 });
    expect(policy.decide(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","NAME":"rm"}}'), {}, tools)).toMatchObject({ status: 400, reason: 'ambiguous_json' });
    const latin1 = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls'), Buffer.from([0xff]), Buffer.from('"}}')]);
    expect(policy.decide(latin1, {}, tools)).toMatchObject({ status: 400, reason: 'invalid_json', details: { utf8: false } });
    expect(policy.decide(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","arguments":{"A":1,"a":2}}}'), {}, tools)).toEqual({ ok: true, tools: ['ls'] });
  });
});
