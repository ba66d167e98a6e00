/**
 * A real browser through the whole flow (headless Chromium): P's consent page, U's login and
 * consent, arrival at the client's redirect URI with code, state and iss. It catches what a
 * fetch driver cannot: CSP form-action on the redirect chain (interop F15), __Host- cookies on
 * loopback, Fetch Metadata as the browser really sends it, and framing (AT-05).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser as Chromium } from 'playwright-core';
import { listenLoopback, registerClient } from '../helpers/app.js';
import { buildAuthorization, redeem, startStack, type Stack } from '../helpers/stack.js';
import { ARTIFACTS, launchChromium } from '../helpers/chromium.js';

let stack: Stack;
let chromium: Chromium;
let clientServer: Server;
let clientPort: number;
const received: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  chromium = await launchChromium();
  clientServer = createServer((req, res) => {
    received.push(req.url ?? '');
    if (req.url?.startsWith('/frame')) {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>evil</title><iframe id="f" src="${decodeURIComponent(req.url.slice('/frame?u='.length))}" width="600" height="400"></iframe>`);
      return;
    }
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>client callback</title><p>signed in</p>');
  });
  clientPort = await listenLoopback(clientServer);
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  await new Promise((r) => clientServer?.close(r));
  await stack?.close();
});

describe('headless Chromium', () => {
  it('clicks through P\'s consent and U\'s login and lands at the client with code, state and iss; then remembers', async () => {
    const redirectUri = `http://127.0.0.1:${clientPort}/callback`;
    const client = await registerClient(stack.app, { client_name: 'Chromium Test Client', redirect_uris: [redirectUri] });
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, redirectUri });
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(auth.url);
    await page.waitForSelector('#approve');
    expect(await page.title()).toBe('Authorize access · MCP Consent Proxy');
    await page.screenshot({ path: join(ARTIFACTS, 'consent.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(ARTIFACTS, 'consent-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });

    await page.click('#approve');
    await page.waitForSelector('input[name="login"]');
    await page.fill('input[name="login"]', 'alice');
    await page.click('button[type="submit"]');
    await page.waitForSelector('button[name="allow"]');
    await page.click('button[name="allow"]');
    await page.waitForURL(`${redirectUri}**`);
    const landed = new URL(page.url());
    expect(landed.searchParams.get('state')).toBe(auth.state);
    expect(landed.searchParams.get('iss')).toBe(stack.app.url);
    const code = landed.searchParams.get('code') as string;
    expect((await redeem(stack.app, client.client_id, code, auth.verifier, redirectUri)).status).toBe(200);
    expect(received.some((u) => u.startsWith('/callback?code='))).toBe(true);
    const cookies = await context.cookies(stack.app.url);
    expect(cookies.map((c) => c.name)).toEqual(expect.arrayContaining(['__Host-mcp-session', '__Host-mcp-csrf']));
    expect(cookies.find((c) => c.name === '__Host-mcp-session')).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Lax', path: '/' });

    // Opened again by the application (no initiator: Sec-Fetch-Site none): remembered, no page.
    const again = buildAuthorization(stack.app, { clientId: client.client_id, redirectUri });
    await page.goto(again.url);
    await page.waitForURL(`${redirectUri}**`);
    expect(new URL(page.url()).searchParams.get('code')).toBeTruthy();
    await context.close();
  }, 60_000);

  it('cannot be framed by another site (AT-05)', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(`http://localhost:${clientPort}/frame?u=${encodeURIComponent(auth.url)}`);
    await page.waitForLoadState('load');
    const frame = page.frames().find((f) => f !== page.mainFrame());
    const approve = frame ? await frame.$('#approve').catch(() => null) : null;
    expect(approve).toBeNull();
    await page.screenshot({ path: join(ARTIFACTS, 'framing-blocked.png') });
    await context.close();
  }, 60_000);
});
