/**
 * A consent revoked between the moment P hands the browser to oidc-provider's resume
 * (`/authorize/:uid`) and the resume itself (review 2026-12-07; src/provider/interaction-result.ts).
 * The provider then signs its session in, finds no grant and opens a new interaction: P asks
 * again, the user approves again — and the resume of that interaction failed ("interaction session
 * and authentication session mismatch", a 400 "this sign-in has expired") because the provider had
 * stored its session's uid in it and P never passes that session back. A consent was recorded for
 * nothing. Now the user's second approval reaches the client with a code, on the callback path and
 * on the skip path alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, isConsentPage, redeem, startStack, type Stack } from '../helpers/stack.js';
import type { Page } from '../helpers/browser.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const admin = { actor: 'admin' as const, subject: 'admin-1' };

/** Click through P's and U's pages (approving, signing in as `login`) until `stop` says so. */
async function clickThrough(browser: Browser, page: Page, login: string, stop: (u: string) => boolean): Promise<{ page: Page; seen: string[] }> {
  const seen: string[] = [];
  for (let i = 0; i < 8 && page.status !== 0; i++) {
    if (isConsentPage(page)) {
      seen.push('consent');
      page = await browser.submit(page, { action: 'approve' }, { stopAt: stop });
    } else if (/name="login"/.test(page.html)) page = await browser.submit(page, { login }, { stopAt: stop });
    else if (page.html.includes('name="allow"')) page = await browser.submit(page, { allow: 'yes' }, { stopAt: stop });
    else throw new Error(`unexpected page ${page.status} at ${page.url}: ${page.html.replace(/\s+/g, ' ').slice(0, 300)}`);
  }
  return { page, seen };
}

const isResume = (u: string) => u.startsWith(stack.app.url) && /\/authorize\/[^/?]+$/.test(new URL(u).pathname);
const activeConsents = (clientId: string) => rows(stack.app, 'SELECT id FROM consents WHERE client_id = ? AND revoked_at IS NULL', clientId);

async function finishesWithCode(browser: Browser, resumeUrl: string, auth: ReturnType<typeof buildAuthorization>, clientId: string, login: string) {
  const atClient = (u: string) => u.startsWith(auth.redirectUri);
  const { page, seen } = await clickThrough(browser, await browser.navigate(resumeUrl, { stopAt: atClient }), login, atClient);
  expect(seen, 'P asks again').toEqual(['consent']);
  expect(page.status, page.html.replace(/\s+/g, ' ').slice(0, 200)).toBe(0);
  const code = new URL(page.url).searchParams.get('code');
  expect(code).toBeTruthy();
  expect((await redeem(stack.app, clientId, code as string, auth.verifier, auth.redirectUri)).status).toBe(200);
  expect(await activeConsents(clientId)).toHaveLength(1);
}

describe('a consent revoked just before the resume', () => {
  it('after the callback recorded it: P asks again, and the second approval reaches the client', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('revoked-before-resume');
    const auth = buildAuthorization(stack.app, { clientId });
    const { page } = await clickThrough(browser, await browser.navigate(auth.url, { stopAt: isResume }), 'rosa', isResume);
    expect(isResume(page.url)).toBe(true);
    const [consent] = await activeConsents(clientId);
    await stack.app.runtime.ops.revokeConsent(Number(consent.id), admin);
    await finishesWithCode(browser, page.url, auth, clientId, 'rosa');
  });

  it('after the consent page was skipped for it: P asks again, and the approval reaches the client', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('revoked-before-skip-resume');
    const first = buildAuthorization(stack.app, { clientId });
    await drive(browser, first.url, first.redirectUri, { login: 'remy' });
    const auth = buildAuthorization(stack.app, { clientId });
    const page = await browser.navigate(auth.url, { stopAt: isResume });
    expect(isResume(page.url), 'skipped: straight to the resume').toBe(true);
    const [consent] = await activeConsents(clientId);
    await stack.app.runtime.ops.revokeConsent(Number(consent.id), admin);
    await finishesWithCode(browser, page.url, auth, clientId, 'remy');
  });
});
