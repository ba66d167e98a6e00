/**
 * Reflected page messages (issue 9 item 5; DESIGN §9 hostile input): `?done=` and `?revoked=` on
 * the admin and account pages showed whatever the link said ("The client was Your account is
 * locked…", "Revoked consent <text>", "Revoked." for any value). Now only our own fixed messages
 * appear, for an allowed code that is true of the page; anything else shows no notice at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { csrfOf, signIn } from '../helpers/admin.js';

const LURE = 'Your account is locked. Call +1 555 0100 and give the operator your code';
const q = encodeURIComponent(LURE);

let stack: Stack;
let admin: Browser;
let adminCsrf: string;
let alice: Browser;
let activeClient: string;
let activeConsent: number;
let revokedConsent: number;
let bobsRevokedConsent: number;

beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
  alice = new Browser('alice');
  activeClient = (await authorizeClient(stack, alice, { login: 'alice' })).clientId;
  const toRevoke = (await authorizeClient(stack, alice, { login: 'alice' })).clientId;
  const bobs = (await authorizeClient(stack, new Browser('bob'), { login: 'bob' })).clientId;
  const idOf = async (clientId: string) => (await rows(stack.app, 'SELECT id FROM consents WHERE client_id = ?', clientId))[0].id as number;
  activeConsent = await idOf(activeClient);
  revokedConsent = await idOf(toRevoke);
  bobsRevokedConsent = await idOf(bobs);
  admin = new Browser('admin');
  adminCsrf = csrfOf(await signIn(stack, admin, 'admin', 'root'));
  for (const id of [revokedConsent, bobsRevokedConsent]) {
    const res = await admin.navigate(`${stack.app.url}/admin/consents/${id}/revoke`, { method: 'POST', body: new URLSearchParams({ csrf: adminCsrf }), initiator: stack.app.url });
    expect(res.status).toBe(200);
  }
});
afterAll(() => stack.close());

const notices = (html: string) => [...html.matchAll(/<div class="notice[^"]*" role="status">([\s\S]*?)<\/div>/g)].map((m) => m[1]?.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim());

describe('reflected page messages', () => {
  it('an attacker-chosen ?done= on an admin client page is not rendered; our own code is, when true', async () => {
    const url = `${stack.app.url}/admin/clients/${encodeURIComponent(activeClient)}`;
    for (const value of [q, '%3Cb%3Edisabled%3C%2Fb%3E', 'deleted', 'disabled']) {
      const page = await admin.navigate(`${url}?done=${value}`);
      expect(page.status, value).toBe(200);
      expect(page.html, value).not.toContain('account is locked');
      expect(notices(page.html), value).toEqual([]); // the client is active: "disabled" is not true
    }
    expect(notices((await admin.navigate(`${url}?done=enabled`)).html)).toEqual(['Done. The client was enabled.']);
  });

  it('an attacker-chosen ?revoked= on the admin consents page is not rendered; an active consent\'s id shows nothing', async () => {
    for (const value of [q, `${revokedConsent}%20${q}`, String(activeConsent), '999999', '0', `-${revokedConsent}`]) {
      const page = await admin.navigate(`${stack.app.url}/admin/consents?revoked=${value}`);
      expect(page.status, value).toBe(200);
      expect(page.html, value).not.toContain('account is locked');
      expect(notices(page.html), value).toEqual([]);
    }
    const real = notices((await admin.navigate(`${stack.app.url}/admin/consents?revoked=${revokedConsent}`)).html);
    expect(real).toHaveLength(1);
    expect(real[0]).toMatch(new RegExp(`^Revoked consent ${revokedConsent}\\. Its grant`));
  });

  it('/account shows "Revoked." only for the user\'s own revoked consent', async () => {
    for (const value of [q, String(activeConsent), String(bobsRevokedConsent), '999999']) {
      const page = await alice.navigate(`${stack.app.url}/account?revoked=${value}`);
      expect(page.status, value).toBe(200);
      expect(page.html, value).not.toContain('account is locked');
      expect(notices(page.html), value).toEqual([]);
    }
    const own = notices((await alice.navigate(`${stack.app.url}/account?revoked=${revokedConsent}`)).html);
    expect(own).toEqual(["Revoked. The application's access ended; it will have to ask you again."]);
  });
});
