/**
 * Review of issue 9, "sign-in refusals flood the audit log" (DESIGN §9, SEC-01): the sign-in
 * buttons of /admin/login and /account/login (issue 9 item 5) refused a POST without this
 * browser's token with one permanent audit row per request and no budget — 2,000 such POSTs from
 * anywhere added 2,000 rows, although an /admin request with nobody signed in is an
 * unauthenticated refusal that must be budgeted (RATE_LIMIT_REJECTED, 429 beyond) and tallied
 * into one row per address, reason and minute (issue 9 item 4). The same held for a POST to
 * /account with nobody signed in. A POST that carries this browser's token is not a refusal: it
 * is never counted, and still starts the sign-in from the flooding address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, startStack, type Stack } from '../helpers/stack.js';

const FLOOD = 200;
const BUDGET = 5;
const ip = { admin: '203.0.113.21', account: '203.0.113.22', revoke: '203.0.113.23' };

let stack: Stack;
let now = Math.floor(Date.now() / 60_000) * 60_000 + 5_000;

beforeAll(async () => {
  stack = await startStack({ now: () => now, env: { TRUST_PROXY: 'loopback', RATE_LIMIT_REJECTED: `${BUDGET}/1m`, ADMIN_SUBJECTS: 'root' } });
});
afterAll(() => stack.close());

const tip = async () => {
  await stack.app.runtime.audit.flush();
  return ((await stack.app.runtime.stores.auditLog.tip())?.seq ?? 0) as number;
};
const since = async (seq: number) => {
  await stack.app.runtime.audit.flush();
  return await rows(stack.app, 'SELECT event, reason, ip, details FROM audit_log WHERE seq > ? ORDER BY seq', seq) as { event: string; reason: string; ip: string | null; details: string }[];
};
const transactions = async () => (await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions'))[0].n as number;

async function flood(path: string, from: string): Promise<Response[]> {
  const out: Response[] = [];
  for (let i = 0; i < FLOOD; i++) {
    const res = await fetch(`${stack.app.url}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'x-forwarded-for': from, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' },
      body: 'csrf=forged',
    });
    await res.arrayBuffer();
    out.push(res);
  }
  return out;
}

describe('sign-in refusals flood the audit log', () => {
  it.each([
    ['/admin/login', 'admin.rejected_aggregate', ip.admin, 'signin_cross_site'],
    ['/account/login', 'account.rejected_aggregate', ip.account, 'signin_cross_site'],
    ['/account/consents/1/revoke', 'account.rejected_aggregate', ip.revoke, 'not_signed_in'],
  ])('POST %s without a token or session: 403 within the budget, 429 beyond, no row per request, one tallied row', async (path, event, from, reason) => {
    const before = await tip();
    const transactionsBefore = await transactions();
    const answers = await flood(path, from);
    expect(answers.filter((r) => r.status === 403)).toHaveLength(BUDGET);
    const limited = answers.filter((r) => r.status === 429);
    expect(limited).toHaveLength(FLOOD - BUDGET);
    expect(Number(limited[0]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    for (const r of answers) expect(r.headers.get('location')).toBeNull();
    expect(await transactions()).toBe(transactionsBefore);
    // Nothing written per request while the minute runs.
    expect(await since(before)).toEqual([]);

    stack.app.runtime.refusals.tally.flush(); // the minute ends (or the server stops)
    const written = await since(before);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ event, reason, ip: from });
    expect(JSON.parse(written[0]?.details as string)).toMatchObject({ count: FLOOD, limited: FLOOD - BUDGET, first: { method: 'POST', path: path.replace(/^\/(admin|account)/, '') } });
  });

  it('a POST with this browser\'s token from the flooding address still starts the sign-in (never counted, never 429)', async () => {
    const browser = new Browser('admin-behind-the-flood');
    const page = await browser.navigate(`${stack.app.url}/admin/login`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)?.[1] as string;
    const cookie = `__Host-mcp-csrf=${browser.cookie('127.0.0.1', '__Host-mcp-csrf')}`;
    const before = await transactions();
    const res = await fetch(`${stack.app.url}/admin/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'x-forwarded-for': ip.admin, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', cookie },
      body: new URLSearchParams({ csrf }),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')?.startsWith(stack.upstream.issuer)).toBe(true);
    expect(await transactions()).toBe(before + 1);
  });
});
