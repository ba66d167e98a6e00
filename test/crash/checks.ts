/**
 * After each kill and restart of P (test/crash): what was answered before the kill survives, what
 * was half-done is not usable, and the audit log holds every answered decision. Checked over HTTP
 * (the client's view) and, for what no client can see, through test/helpers/crash-probe.ts.
 *   - every live grant: its latest access token passes the gateway and its latest refresh token
 *     rotates (an unanswered rotation may have consumed it: then it is reuse and the grant ends;
 *     a rotation of U's refresh token that P had no time to store ends it too — counted);
 *   - one grant per cycle: an older refresh token is reuse — refused, and the grant revoked;
 *   - every revoked grant: its access token is refused, its refresh token too, its consent revoked;
 *   - codes the client received: redeemable (unless their redemption was already sent);
 *   - consents whose callback was answered: recorded; clients registered: known;
 *   - no code or token without an active consent and grant (db-probe halfDone);
 *   - every answered decision has its audit row; gateway records missing are counted (lost).
 */
import { Browser, mcpCall, redeem, refresh } from '../helpers/actors.js';
import { isConsentPage } from '../helpers/stack.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';
import { CLIENT_REDIRECT } from '../helpers/stack.js';
import type { DbProbe } from '../helpers/crash-probe.js';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import type { Answer, GrantModel } from './model.js';
import type { World } from './traffic.js';

export interface CheckContext {
  p: string;
  cycle: number;
  world: World;
  probe: DbProbe;
  /** the audit tip before this cycle's traffic */
  startSeq: number;
  decisions: Answer[];
  gateway: Answer[];
  killAt: number;
  /** Date.now() at the kill (U logs wall-clock times) */
  killEpoch: number;
  upstream: FakeUpstream;
  /** revoked grants re-checked every cycle (the newest ones) */
  recheckRevoked: number;
}

export interface CheckReport {
  problems: string[];
  grantsChecked: number;
  revokedChecked: number;
  codesRedeemed: number;
  reuseChecked: number;
  gatewayLost: number;
  /** kill time − answer time of the oldest lost gateway record, ms */
  gatewayLostMaxAgeMs: number;
  /** grants ended because U rotated their refresh token for a P that was killed before it stored the new one */
  upstreamRotationsLost: number;
}

export async function checkAfterRestart(c: CheckContext): Promise<CheckReport> {
  const report: CheckReport = { problems: [], grantsChecked: 0, revokedChecked: 0, codesRedeemed: 0, reuseChecked: 0, gatewayLost: 0, gatewayLostMaxAgeMs: 0, upstreamRotationsLost: 0 };
  const problem = (text: string) => report.problems.push(`cycle ${c.cycle}: ${text}`);
  for (const p of await c.probe.halfDone()) problem(`half-done state after the restart: ${p}`);
  await checkAudit(c, report, problem);
  await checkCodes(c, report, problem);
  await checkOpenFlows(c, problem);
  for (const g of c.world.grants.filter((x) => x.status === 'live')) {
    if (await checkLive(c, g, problem)) report.upstreamRotationsLost += 1;
    report.grantsChecked += 1;
  }
  const reuse = c.world.grants.find((g) => g.status === 'live' && g.refreshes.length >= 2);
  if (reuse) {
    await checkReuse(c, reuse, problem);
    report.reuseChecked += 1;
  }
  for (const g of c.world.grants.filter((x) => x.status === 'revoked').slice(-c.recheckRevoked)) {
    await checkRevoked(c, g, problem);
    report.revokedChecked += 1;
  }
  return report;
}

/** Answered decisions must all be in the log; answered gateway requests may miss the group-commit window. */
async function checkAudit(c: CheckContext, report: CheckReport, problem: (t: string) => void): Promise<void> {
  const logged = new Set((await c.probe.auditSince(c.startSeq)).map((r) => r.request_id));
  for (const d of c.decisions) if (!d.requestId || !logged.has(d.requestId)) problem(`the ${d.what} answered (request ${d.requestId || '?'}) has no audit row`);
  for (const g of c.gateway) {
    if (logged.has(g.requestId)) continue;
    report.gatewayLost += 1;
    report.gatewayLostMaxAgeMs = Math.max(report.gatewayLostMaxAgeMs, c.killAt - g.at);
  }
}

async function checkCodes(c: CheckContext, report: CheckReport, problem: (t: string) => void): Promise<void> {
  for (const code of c.world.pendingCodes.splice(0)) {
    const r = await redeem(c.p, code.clientId, code.code, code.verifier);
    if (r.status === 200) {
      report.codesRedeemed += 1;
      const { access_token: access, refresh_token: refreshToken } = r.body as { access_token: string; refresh_token: string };
      c.world.grants.push({ n: (c.world.nextN += 1), clientId: code.clientId, login: code.login, rotatesUpstream: code.rotatesUpstream, access, refreshes: [refreshToken], sessionId: undefined, status: 'live', busy: false, inflight: undefined });
    } else if (!code.redeemSent) {
      problem(`a code the client received before the kill was refused after the restart: ${r.status} ${JSON.stringify(r.body)}`);
    }
    // A code whose redemption got no answer may have been consumed: a second use is refused (and revokes its grant).
  }
}

async function checkOpenFlows(c: CheckContext, problem: (t: string) => void): Promise<void> {
  for (const { clientId } of c.world.consentsWithoutCode.splice(0)) {
    const consents = await c.probe.consentsOf(clientId);
    if (!consents.some((x) => x.revoked_at === null)) problem(`the consent answered for client ${clientId} is not recorded after the restart`);
  }
  for (const { clientId } of c.world.clientsWithoutConsent.splice(0)) {
    const { challenge } = pkcePair();
    const url = authorizeUrl(c.p, { response_type: 'code', client_id: clientId, redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 'crash-check' });
    const page = await new Browser('check').navigate(url, { stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    if (!isConsentPage(page)) problem(`client ${clientId}, registered before the kill, is not known after the restart: ${page.status}`);
  }
}

async function gatewayStatus(c: CheckContext, g: GrantModel): Promise<number> {
  const r = await mcpCall(c.p, g.access, g.sessionId, 1);
  if (r.status === 200) g.sessionId = r.sessionId;
  return r.status;
}

function endGrant(g: GrantModel, by: GrantModel['revokedBy']): void {
  g.status = 'revoked';
  g.revokedBy = by;
}

/**
 * U rotated this user's refresh token for a P that was killed before it stored the new one: U
 * answered P's refresh at (or just before) the kill, and after the restart P's stored token is a
 * reused one — U ends its grant, so P ends the consent (AT-22). Not P's to prevent: the rotation
 * happened at U; counted and reported as a limit.
 */
async function lostUpstreamRotation(c: CheckContext, g: GrantModel): Promise<boolean> {
  const revoked = (await c.probe.consentsOf(g.clientId)).find((x) => x.revoked_at !== null && x.revoked_reason === 'upstream_invalid_grant');
  const rotatedAtKill = c.upstream.tokenRequests.some((r) => r.grant_type === 'refresh_token' && r.sub === g.login && r.at >= c.killEpoch - ROTATION_MARGIN_MS);
  return g.rotatesUpstream && revoked !== undefined && rotatedAtKill;
}

/** How long before the kill U's answer may have come without P having stored it (P stores it in the same tick). */
const ROTATION_MARGIN_MS = 100;

/** Returns true when the grant ended for a rotation at U lost to the kill (see lostUpstreamRotation). */
async function checkLive(c: CheckContext, g: GrantModel, problem: (t: string) => void): Promise<boolean> {
  const inflight = g.inflight;
  g.inflight = undefined;
  const status = await gatewayStatus(c, g);
  if (inflight === 'revoke') {
    // The admin's revocation got no answer: it committed or it did not — and everything agrees.
    const active = (await c.probe.consentsOf(g.clientId)).some((x) => x.revoked_at === null);
    if ((status === 200) !== active) problem(`grant ${g.n}: gateway ${status} but consent ${active ? 'active' : 'revoked'} after an unanswered revocation`);
    if (!active) {
      endGrant(g, 'unanswered');
      return false;
    }
  } else if (status === 401 && (await lostUpstreamRotation(c, g))) {
    endGrant(g, 'upstream');
    return true;
  } else if (status !== 200) {
    problem(`grant ${g.n} (answered before the kill) is refused at the gateway after the restart: ${status}`);
    return false;
  }
  const r = await refresh(c.p, g.clientId, g.refreshes.at(-1) as string);
  if (r.status === 200) {
    g.refreshes.push(r.body.refresh_token as string);
    g.access = r.body.access_token as string;
  } else if (inflight === 'refresh' && r.body.error === 'invalid_grant') {
    // The unanswered rotation committed: the token the client holds is now a reused one (RT-02).
    endGrant(g, 'unanswered');
    if ((await gatewayStatus(c, g)) !== 401) problem(`grant ${g.n}: reuse after an unanswered rotation did not end the grant`);
  } else {
    problem(`grant ${g.n}: its latest refresh token (answered before the kill) is refused after the restart: ${r.status} ${JSON.stringify(r.body)}`);
  }
  return false;
}

async function checkReuse(c: CheckContext, g: GrantModel, problem: (t: string) => void): Promise<void> {
  const older = g.refreshes.at(-2) as string;
  const r = await refresh(c.p, g.clientId, older);
  if (r.status !== 400 || r.body.error !== 'invalid_grant') return problem(`grant ${g.n}: an older refresh token was accepted after the restart: ${r.status}`);
  endGrant(g, 'reuse');
  if ((await gatewayStatus(c, g)) !== 401) problem(`grant ${g.n}: refresh-token reuse did not revoke the grant`);
}

async function checkRevoked(c: CheckContext, g: GrantModel, problem: (t: string) => void): Promise<void> {
  const status = await gatewayStatus(c, g);
  if (status !== 401) problem(`grant ${g.n} (revoked by ${g.revokedBy}) answers ${status} at the gateway after the restart`);
  const r = await refresh(c.p, g.clientId, g.refreshes.at(-1) as string);
  if (r.status !== 400) problem(`grant ${g.n} (revoked by ${g.revokedBy}): its refresh token answers ${r.status} after the restart`);
  const consents = await c.probe.consentsOf(g.clientId);
  if (consents.some((x) => x.revoked_at === null)) problem(`grant ${g.n} (revoked by ${g.revokedBy}): its consent is active again after the restart`);
}
