/**
 * REG-10, AT-17: hostile registration data is refused or rendered as text, never as markup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { signIn } from '../helpers/admin.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
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

describe('hostile client metadata on the admin and account pages', () => {
  it('renders names, URIs and software ids from registrations as text on every page', async () => {
    const hostile = '<img src=x onerror=alert(1)>"\'><script>alert(2)</script>';
    const longId = `sw-${'x'.repeat(190)}`;
    const user = new Browser('user');
    const { clientId } = await authorizeClient(stack, user, { login: '<b>alice</b>', register: { client_name: hostile, software_id: longId, redirect_uris: ['http://127.0.0.1:33418/callback'] } });
    const admin = new Browser('admin');
    await signIn(stack, admin, 'admin', 'root');
    const pages = [
      ['/admin', admin],
      ['/admin/clients', admin],
      [`/admin/clients/${encodeURIComponent(clientId)}`, admin],
      ['/admin/consents', admin],
      ['/admin/audit', admin],
      ['/account', user],
    ] as const;
    for (const [path, browser] of pages) {
      const page = await browser.navigate(`${stack.app.url}${path}`);
      expect(page.status, path).toBe(200);
      expect(page.html, path).not.toMatch(/<script>alert|<img src=x|<b>alice<\/b>/);
      expect(page.html.match(/<script/g) ?? [], path).toHaveLength(0);
    }
    const detail = await admin.navigate(`${stack.app.url}/admin/clients/${encodeURIComponent(clientId)}`);
    expect(detail.html).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
    expect(detail.html).toContain(longId);
    const consents = await admin.navigate(`${stack.app.url}/admin/consents`);
    expect(consents.html).toContain('<bdi>&lt;img src=x onerror=alert(1)&gt;');
    const account = await user.navigate(`${stack.app.url}/account`);
    expect(account.html).toContain('&lt;img src=x onerror=alert(1)&gt;');

    // Registration refuses bidi overrides (REG-10); a name stored before that rule, or written
    // by hand, is still isolated wherever it is shown, so it cannot reorder the text around it.
    const rtl = 'Claude\u202Etxt.exe';
    await stack.app.runtime.sql.run('UPDATE clients_meta SET client_name = ? WHERE client_id = ?', [rtl, clientId]);
    for (const [path, browser] of [['/admin/clients', admin], [`/admin/clients/${encodeURIComponent(clientId)}`, admin], ['/admin/consents', admin], ['/account', user]] as const) {
      const html = (await browser.navigate(`${stack.app.url}${path}`)).html;
      expect(html.split(rtl).length - 1, path).toBeGreaterThan(0);
      expect(html.split(`<bdi>${rtl}</bdi>`).length, path).toBe(html.split(rtl).length);
    }
  });
});
