/**
 * Member names that let two JSON parsers read one body two ways (src/gateway/json-members.ts;
 * RFC 8259 §4), and the tool policy's refusal of them (GW-15; found by review, 2026-12-06: a body
 * with `"name"` twice was judged by its last value, and a parser that keeps the first — or that
 * matches names ignoring case — runs another tool).
 */
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
