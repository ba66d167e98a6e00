/**
 * Found by the failing-dependency suite (issue 13 §3): P loaded U's discovery document once and
 * kept it for the life of the process. When U changed it — here its token endpoint moved (the old
 * path now 404s, the document names the new one) — every sign-in failed until P was restarted.
 * Now a failed call to U that is not U's own OAuth error drops the cached document
 * (src/upstream/presets.ts `forgetUnlessOAuthAnswer`): the sign-in that hit the old endpoint ends
 * on the 502 page, the next one discovers again and completes — no restart. A refusal U states
 * itself (an OAuth error) keeps the document.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { startFaultStack, toCallback, type FaultStack } from './fault-stack.js';

let stack: FaultStack;
let clientId: string;
beforeAll(async () => {
  stack = await startFaultStack();
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack.close());

const discoveries = () => stack.u.requests.filter((r) => r.path.startsWith('/.well-known/openid-configuration')).length;

async function signIn(name: string) {
  const browser = new Browser(name);
  const { callback, auth } = await toCallback(stack, browser, clientId);
  const page = await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(auth.redirectUri) });
  if (page.status !== 0 && page.status !== 200) return { status: page.status, code: null };
  const result = page.status === 0 ? new URL(page.url) : (await drive(browser, page.url, auth.redirectUri)).callback;
  const code = result.searchParams.get('code');
  if (code) expect((await redeem(stack.app, clientId, code, auth.verifier, auth.redirectUri)).status).toBe(200);
  return { status: 0, code };
}

describe('upstream discovery change', () => {
  it('the token endpoint moves: one sign-in fails (502), the next re-discovers and completes without a restart', async () => {
    expect((await signIn('before')).code).toBeTruthy(); // the document is loaded and cached
    const loaded = discoveries();
    await stack.u.setFault({ kind: 'moved', from: '/token', to: '/token-v2' });
    expect((await signIn('moved')).status).toBe(502);
    expect((await signIn('after')).code).toBeTruthy();
    expect(discoveries()).toBeGreaterThan(loaded);
    expect(stack.u.requests.some((r) => r.path.startsWith('/token-v2'))).toBe(true);
  });

  it("U's own OAuth error at the exchange (a refused code) keeps the document", async () => {
    await stack.u.setFault(undefined);
    await signIn('moved back'); // the endpoint moved back: this one may fail and re-discover
    expect((await signIn('warm')).code).toBeTruthy();
    const loaded = discoveries();
    const browser = new Browser('refused');
    const { callback } = await toCallback(stack, browser, clientId);
    const forged = new URL(callback);
    forged.searchParams.set('code', 'not-a-code-U-issued');
    expect((await browser.navigate(forged.href, { initiator: stack.upstream.issuer })).status).toBe(502);
    expect((await signIn('still')).code).toBeTruthy();
    expect(discoveries()).toBe(loaded);
  });
});
