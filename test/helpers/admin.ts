/** Signing in to P's admin and account pages through the (fake) upstream, as a user would. */
import { Browser, type Page } from './browser.js';
import { parseForm } from './browser.js';
import type { Stack } from './stack.js';

/** Sign in at `${url}/admin/login` (or /account/login) as `login`; returns the landing page. */
export async function signIn(stack: Stack, browser: Browser, purpose: 'admin' | 'account', login: string): Promise<Page> {
  let page = await browser.navigate(`${stack.app.url}/${purpose}/login`);
  for (let i = 0; i < 5; i++) {
    if (/name="login"/.test(page.html)) page = await browser.submit(page, { login });
    else if (page.html.includes('name="allow"')) page = await browser.submit(page, { allow: 'yes' });
    else return page;
  }
  return page;
}

/** The CSRF token of the first form on a page. */
export function csrfOf(page: Page): string {
  const form = parseForm(page.html, '/logout') ?? parseForm(page.html);
  const token = form?.fields.csrf;
  if (!token) throw new Error(`no csrf token on ${page.url}`);
  return token;
}

export { Browser };
