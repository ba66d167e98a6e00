/** Signing in to P's admin and account pages through the (fake) upstream, as a user would. */
import { Browser, type Page } from './browser.js';
import { parseForm } from './browser.js';
import type { Stack } from './stack.js';

/** Sign in at `${url}/admin/login` (or /account/login) as `login` — press its Sign in button; returns the landing page. */
export async function signIn(stack: Stack, browser: Browser, purpose: 'admin' | 'account', login: string): Promise<Page> {
  let page = await clickSignIn(browser, await browser.navigate(`${stack.app.url}/${purpose}/login`));
  for (let i = 0; i < 5; i++) {
    if (/name="login"/.test(page.html)) page = await browser.submit(page, { login });
    else if (page.html.includes('name="allow"')) page = await browser.submit(page, { allow: 'yes' });
    else return page;
  }
  return page;
}

/** Press the Sign in button of P's sign-in page (a form POST to …/login). */
export function clickSignIn(browser: Browser, page: Page, options: { stopAt?: (url: string) => boolean } = {}): Promise<Page> {
  return browser.submit(page, {}, { actionPart: '/login', stopAt: options.stopAt });
}

/** The CSRF token of the first form on a page. */
export function csrfOf(page: Page): string {
  const form = parseForm(page.html, '/logout') ?? parseForm(page.html);
  const token = form?.fields.csrf;
  if (!token) throw new Error(`no csrf token on ${page.url}`);
  return token;
}

export { Browser };
