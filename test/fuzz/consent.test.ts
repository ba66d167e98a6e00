/**
 * Fuzz: the consent decision form (POST /interaction/:uid/decision; CONS-08/14/15/18, AT-04/08)
 * and U's redirect back to P (GET /upstream/callback; STATE-03..08, UP-05/09). The form with a
 * valid, junk, missing or repeated CSRF token and action, stray fields (redirect_uri, client_id,
 * scope: never read), with and without the interaction's cookies and Fetch Metadata, for a live,
 * unknown or undecodable interaction; the callback with a live state bound to this browser, a used
 * one, an unknown one or none, with and without the browser's cookie, junk codes, iss, error and
 * error_description. Every invariant of test/helpers/fuzz.ts after each case.
 *
 * Documented answers that are not 4xx: an Approve is a 303 to U (an upstream transaction is
 * created, nothing else); a Deny a 303 back to the provider. A callback with a live state makes
 * P redeem the code at U (UP-06): U refusing the junk code is answered 502 "Sign-in failed"
 * (UP-09, test/flow/6-upstream-callback.test.ts) — the one 5xx these cases may see, and only then.
 */
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { registerClient } from '../helpers/app.js';
import { Browser, buildAuthorization, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { parseForm, type Page } from '../helpers/browser.js';
import { FuzzTarget, fuzz, fuzzTimeout } from '../helpers/fuzz.js';
import { contentType, encodeWith, encodings, FORM, junk, oddHeaders, paramList } from './arbitraries.js';

const FILE = 'test/fuzz/consent.test.ts';
const CI_RUNS = 300;

let stack: Stack;
let target: FuzzTarget;
let clientId: string;
let browsers = 0;

beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_AUTHORIZE: '1000000/1m' } });
  target = new FuzzTarget(stack);
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack.close());

/** A consent page open in a fresh browser (no session: the page is always shown). */
async function openConsent(): Promise<{ browser: Browser; page: Page; uid: string; cookie: string; csrf: string }> {
  const browser = new Browser(`consent-${browsers++}`);
  const page = await browser.navigate(buildAuthorization(stack.app, { clientId }).url);
  if (!isConsentPage(page)) throw new Error(`expected a consent page, got ${page.status}`);
  const uid = /\/interaction\/([^/?#]+)/.exec(page.url)?.[1] as string;
  return { browser, page, uid, cookie: browser.cookiesFor(new URL(`${stack.app.url}/interaction/${uid}`), false, false), csrf: parseForm(page.html)?.fields.csrf as string };
}

/** An upstream login in flight: its state, and the browser's cookies for the callback (a top-level GET from U). */
async function openUpstreamLogin(): Promise<{ state: string; cookie: string }> {
  const consent = await openConsent();
  const toU = await consent.browser.submit(consent.page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
  const state = new URL(toU.url).searchParams.get('state') as string;
  target.addSecret('upstream state', state);
  return { state, cookie: consent.browser.cookiesFor(new URL(`${stack.app.url}/upstream/callback`), true, true) };
}

describe('fuzz: consent decision and upstream callback', () => {
  it(
    'POST /interaction/:uid/decision',
    async () => {
      let pending = await openConsent();
      const field = (name: string) =>
        fc.oneof({ weight: 3, arbitrary: name === 'csrf' ? fc.constant('<valid>') : name === 'action' ? fc.constantFrom('approve', 'deny', 'APPROVE', 'yes') : junk }, { weight: 1, arbitrary: junk });
      const decision = fc.record({
        pairs: paramList(['csrf', 'action', 'redirect_uri', 'client_id', 'scope', 'uid'], field),
        uid: fc.constantFrom('<live>', '<live>', '<live>', '<live>', 'unknown-uid', '%ZZ', '<live>%00'),
        cookie: fc.constantFrom('valid', 'valid', 'valid', 'none', 'junk'),
        site: fc.constantFrom('same-origin', 'same-origin', 'cross-site', 'same-site', undefined),
        type: contentType(FORM),
        hows: encodings,
        extra: oddHeaders,
      });
      await fuzz(FILE, 'POST /interaction/:uid/decision', CI_RUNS, target, decision, async (r) => {
        const pairs = r.pairs.map(([k, v]) => [k, v === '<valid>' ? pending.csrf : v] as [string, string]);
        const body = encodeWith(pairs, r.hows);
        const headers: [string, string][] = [['Accept', 'text/html'], ...r.extra];
        if (r.cookie === 'valid') headers.push(['Cookie', pending.cookie]);
        if (r.cookie === 'junk') headers.push(['Cookie', '_interaction=x; __Host-mcp-csrf=%ZZ']);
        if (r.site) headers.push(['Sec-Fetch-Site', r.site]);
        if (r.type !== undefined) headers.push(['Content-Type', r.type]);
        const path = `/interaction/${r.uid.replace('<live>', pending.uid)}/decision`;
        const res = await target.case({ method: 'POST', path, headers, body }, { successMayAdd: ['upstream_transactions', 'browser_sessions'] });
        if (res.status >= 300 && res.status < 400) {
          expect(res.status, 'CONS-18: never 307/308').toBe(303);
          pending = await openConsent(); // this interaction is decided: the next cases get a fresh one
        }
      });
    },
    fuzzTimeout(CI_RUNS),
  );

  it(
    'GET /upstream/callback',
    async () => {
      let live = await openUpstreamLogin();
      const used: string[] = [];
      const param = (name: string) =>
        fc.oneof(
          {
            weight: 3,
            arbitrary:
              name === 'state'
                ? fc.constantFrom('<live>', '<live>', '<used>', 'unknown-state')
                : name === 'iss'
                  ? fc.constantFrom(stack.upstream.issuer, 'https://evil-issuer.example')
                  : name === 'error'
                    ? fc.constantFrom('access_denied', 'server_error', 'login_required', '<b>x</b>')
                    : junk,
          },
          { weight: 1, arbitrary: junk },
        );
      const callback = fc.record({
        pairs: paramList(['state', 'code', 'iss', 'error', 'error_description', 'session_state', 'scope'], param),
        cookie: fc.constantFrom('valid', 'valid', 'valid', 'none', 'junk'),
        method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'POST', 'HEAD'),
        hows: encodings,
        extra: oddHeaders,
      });
      await fuzz(FILE, 'GET /upstream/callback', CI_RUNS, target, callback, async (r) => {
        const usesLive = r.pairs.some(([k, v]) => k === 'state' && v === '<live>');
        const pairs = r.pairs.map(([k, v]) => [k, v === '<live>' ? live.state : v === '<used>' ? (used.at(-1) ?? 'none-used-yet') : v] as [string, string]);
        const query = encodeWith(pairs, r.hows);
        const headers: [string, string][] = [['Accept', 'text/html'], ['Sec-Fetch-Site', 'cross-site'], ...r.extra];
        if (r.cookie === 'valid') headers.push(['Cookie', live.cookie]);
        if (r.cookie === 'junk') headers.push(['Cookie', '__Host-mcp-tx=junk~%ZZ']);
        // A live state with this browser's cookie is consumed, and P asks U to redeem the code (UP-06).
        const consumes = usesLive && r.cookie === 'valid' && r.method !== 'POST';
        const res = await target.case({ method: r.method, path: `/upstream/callback?${query}`, headers }, (res) =>
          consumes ? { mayRemove: ['upstream_transactions'], external: ['U'], allow5xx: [502] } : {},
        );
        if (res.status === 502) expect(consumes, `502 only when U was asked: ${res.body.slice(0, 200)}`).toBe(true);
        if (consumes) {
          used.push(live.state);
          live = await openUpstreamLogin();
        }
      });
    },
    fuzzTimeout(CI_RUNS),
  );
});
