/**
 * The admin console and /account in a real browser (headless Chromium): an admin signs in
 * through the upstream, finds a client by name, revokes a consent, filters the audit log,
 * expands a row, exports it, and verifies the chain; a user revokes a connected app. Screenshots
 * of each page go to test/artifacts/ (set UPDATE_SCREENSHOTS=1 to refresh the ones README shows
 * in test/screenshots/). No JavaScript runs on these pages; everything is links and forms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser as Chromium, Page } from 'playwright-core';
import { registerClient } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { ARTIFACTS, launchChromium } from '../helpers/chromium.js';

const SCREENSHOTS = fileURLToPath(new URL('../screenshots/', import.meta.url));
let stack: Stack;
let chromium: Chromium;

beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
  chromium = await launchChromium();
  await authorizeClient(stack, new Browser('alice'), { login: 'alice', register: { client_name: 'Acme Notes', software_id: 'acme-notes', software_version: '2.4.1' } });
  await authorizeClient(stack, new Browser('bob'), { login: 'bob', register: { client_name: 'Calendar Sync' } });
  await registerClient(stack.app, { client_name: 'Claude', redirect_uris: ['https://claude-login.evil.example/cb'] });
  await fetch(`${stack.app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'x', redirect_uris: ['http://attacker.example/cb'] }) });
}, 60_000);
afterAll(async () => {
  await chromium?.close();
  await stack?.close();
});

async function shot(page: Page, name: string) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    copyFileSync(file, join(SCREENSHOTS, `${name}.png`));
  }
}

async function signInAt(page: Page, url: string, login: string) {
  await page.goto(url);
  await page.click('#sign-in');
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.click('button[type="submit"]');
  // U asks for consent at a browser's first sign-in: wait for its button or for the way back to
  // `url`, whichever comes first, however long a busy machine takes (no guess of a few seconds).
  const allow = page.locator('button[name="allow"]');
  const asked = allow.waitFor({ timeout: 30_000 }).then(() => true, () => false);
  const back = page.waitForURL(url, { timeout: 30_000 }).then(() => false, () => false);
  if (await Promise.race([asked, back])) await allow.click();
}

describe('admin console in Chromium', () => {
  it('signs in, finds a client, revokes a consent, filters, exports and verifies the audit log', async () => {
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    const page = await context.newPage();
    await signInAt(page, `${stack.app.url}/admin`, 'root');
    await page.waitForURL(`${stack.app.url}/admin`);
    expect(await page.textContent('h1')).toBe('Overview');
    await shot(page, 'admin-overview');

    await page.click('nav >> text=Clients');
    await page.fill('#q', 'Acme');
    await page.click('button:has-text("Filter")');
    await page.waitForURL(/\/admin\/clients\?q=Acme/);
    expect(await page.locator('tbody tr:not(.sub)').count()).toBe(1);
    await shot(page, 'admin-clients');
    await page.click('tbody a:has-text("Acme Notes")');
    await page.waitForSelector('text=Provenance');
    await shot(page, 'admin-client');

    const revoke = page.locator('form[action*="/admin/consents/"] button').first();
    await revoke.click();
    await page.waitForURL(/revoked=\d+/);

    await page.click('nav >> text=Consents');
    await page.check('input[name="all"]');
    await page.click('button:has-text("Filter")');
    await page.waitForURL(/all=1/);
    expect(await page.locator('text=revoked (admin)').count()).toBe(1);
    await shot(page, 'admin-consents');

    await page.click('nav >> text=Audit log');
    await page.selectOption('#event', 'admin.consent_revoked');
    await page.click('#filter');
    await page.waitForURL(/event=admin\.consent_revoked/);
    expect(await page.locator('tbody tr:not(.sub)').count()).toBe(1);
    await page.click('tbody details summary');
    expect(await page.textContent('tbody pre')).toContain('"grant_id"');
    await shot(page, 'admin-audit');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-ndjson')]);
    const exported = readFileSync((await download.path()) as string, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(exported).toEqual([expect.objectContaining({ event: 'admin.consent_revoked', subject: 'root' })]);

    await page.click('#verify');
    await page.waitForSelector('#verification');
    expect(await page.textContent('#verification')).toMatch(/Chain intact\. Verified up to row \d+/);
    await page.goto(`${stack.app.url}/admin/audit`);
    await shot(page, 'admin-audit-verified');
    await context.close();
  }, 90_000);

  it('lets a user revoke a connected app on /account', async () => {
    const context = await chromium.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    await signInAt(page, `${stack.app.url}/account`, 'bob');
    await page.waitForURL(`${stack.app.url}/account`);
    expect(await page.locator('tbody tr:not(.sub)').count()).toBe(1);
    expect(await page.textContent('tbody')).toContain('Calendar Sync');
    await shot(page, 'account');
    await page.click('tbody button:has-text("Revoke")');
    await page.waitForURL(/revoked=/);
    expect(await page.textContent('main')).toContain('You have not approved any application');
    await context.close();
  }, 60_000);
});
