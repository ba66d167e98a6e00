/**
 * REG-10, AT-17: hostile registration data is refused or rendered as text, never as markup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { Browser, buildAuthorization, isConsentPage, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

async function register(body: Record<string, unknown>) {
  const res = await fetch(`${stack.app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:33418/callback'], ...body }) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe('hostile client metadata', () => {
  it.each([
    ['<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'],
    ['<img src=x onerror=alert(1)>', '&lt;img src=x onerror=alert(1)&gt;'],
    ['"><svg onload=alert(1)>', '&quot;&gt;&lt;svg onload=alert(1)&gt;'],
  ])('renders %j as text on the consent page', async (name, escaped) => {
    const client = await registerClient(stack.app, { client_name: name });
    const page = await new Browser().navigate(buildAuthorization(stack.app, { clientId: client.client_id }).url);
    expect(isConsentPage(page)).toBe(true);
    expect(page.html).toContain(escaped);
    expect(page.html).not.toContain(name);
    expect(page.html).not.toMatch(/<script|<img|<svg/);
  });

  it.each([
    ['an RTL override', 'Claude\u202Etxt.exe'],
    ['a zero-width joiner trick', 'Cla\u200Dude'],
    ['10,000 characters', 'A'.repeat(10_000)],
    ['a newline', 'Claude\nofficial'],
  ])('refuses a client_name with %s', async (_label, name) => {
    const res = await register({ client_name: name });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
  });

  it('never loads a registered logo or follows client URIs on the page', async () => {
    const client = await registerClient(stack.app, { logo_uri: 'https://tracker.example/logo.png', client_uri: 'https://tracker.example/' });
    const page = await new Browser().navigate(buildAuthorization(stack.app, { clientId: client.client_id }).url);
    expect(page.html).not.toContain('tracker.example');
  });
});
