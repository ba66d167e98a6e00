/**
 * The crash suite's mixed traffic against one P process, until it is killed: complete
 * authorizations (DCR → P's consent page → U's login → code → token; some codes are left
 * unredeemed for a moment), refresh-token rotations, MCP calls through the gateway, and an admin
 * revoking consents on /admin. Every answer updates the model (test/crash/model.ts); a request
 * without an answer leaves its grant `inflight`. An error while P is up is a finding.
 */
import { Browser, adminRevoke, authorize, mcpCall, redeem, refresh, register } from '../helpers/actors.js';
import type { Answer, Counts, GrantModel, PendingCode } from './model.js';
import { ROTATING, sleep } from './model.js';

export interface World {
  grants: GrantModel[];
  pendingCodes: PendingCode[];
  /** consents whose callback was answered but whose code never arrived */
  consentsWithoutCode: { clientId: string }[];
  /** clients registered (answered) that never reached a consent */
  clientsWithoutConsent: { clientId: string }[];
  admin: Browser;
  nextN: number;
}

export interface TrafficOptions {
  p: string;
  cycle: number;
  random: () => number;
  /** revoke more eagerly above this many live grants (keeps the checks bounded) */
  maxLive: number;
}

export class Traffic {
  stopped = false;
  /**
   * Only gateway calls from now on: no decision commits the group-commit queue early, so a kill
   * then loses what the documented window (GROUP_COMMIT_MS / GROUP_COMMIT_ROWS) allows.
   */
  gatewayOnly = false;
  /** set just before the SIGKILL: errors after it are expected */
  killed = false;
  readonly decisions: Answer[] = [];
  readonly gateway: Answer[] = [];
  readonly problems: string[] = [];
  readonly counts: Counts;
  private mcpId = 1;

  constructor(
    private readonly world: World,
    private readonly o: TrafficOptions,
    counts: Counts,
  ) {
    this.counts = counts;
  }

  /** Run every worker until `stopped`; resolves when all of them have returned. */
  run(): Promise<void> {
    const workers = [this.flows(), this.flows(), this.refreshes(), this.calls(), this.calls(), this.calls(), this.calls(), this.revocations()];
    return Promise.all(workers).then(() => undefined);
  }

  private fail(what: string, err?: unknown): void {
    if (!this.killed) this.problems.push(`cycle ${this.o.cycle}: ${what}${err ? `: ${(err as Error).message}` : ''}`);
  }

  private pick(filter: (g: GrantModel) => boolean): GrantModel | undefined {
    const candidates = this.world.grants.filter((g) => g.status === 'live' && !g.busy && !g.inflight && filter(g));
    return candidates[Math.floor(this.o.random() * candidates.length)];
  }

  private answered(list: Answer[], requestId: string, what: string): void {
    list.push({ requestId, at: performance.now(), what });
  }

  private async flows(): Promise<void> {
    const { p } = this.o;
    while (!this.stopped) {
      if (this.gatewayOnly) {
        await sleep(10);
        continue;
      }
      const n = (this.world.nextN += 1);
      // Every other user's upstream token is refreshed by P every ~1 s: kills land amid U's rotations.
      const rotatesUpstream = n % 2 === 0;
      const login = `${rotatesUpstream ? ROTATING : 'user-'}${this.o.cycle}-${n}`;
      let clientId: string | undefined;
      let consented = false;
      const progress: { callbackRequestId?: string } = {};
      try {
        const reg = await register(p, `Crash client ${n}`);
        if (reg.status !== 201) return this.fail(`registration answered ${reg.status}`);
        clientId = reg.body.client_id;
        this.counts.registrations += 1;
        this.answered(this.decisions, reg.requestId, 'registration');
        const auth = await authorize(p, new Browser(login), clientId, login, progress);
        consented = true;
        this.counts.consents += 1;
        this.answered(this.decisions, auth.callbackRequestId, 'consent');
        const pending: PendingCode = { clientId, login, rotatesUpstream, code: auth.code, verifier: auth.verifier, redeemSent: false };
        this.world.pendingCodes.push(pending);
        await sleep(this.o.random() * 150); // some codes wait: a kill then finds them unredeemed
        if (this.stopped) return;
        pending.redeemSent = true;
        const tokens = await redeem(p, clientId, auth.code, auth.verifier);
        this.world.pendingCodes.splice(this.world.pendingCodes.indexOf(pending), 1);
        if (tokens.status !== 200) return this.fail(`code redemption answered ${tokens.status} ${JSON.stringify(tokens.body)}`);
        this.counts.tokens += 1;
        this.answered(this.decisions, tokens.requestId, 'token');
        const { access_token: access, refresh_token: refreshToken } = tokens.body as { access_token: string; refresh_token: string };
        this.world.grants.push({ n, clientId, login, rotatesUpstream, access, refreshes: [refreshToken], sessionId: undefined, status: 'live', busy: false, inflight: undefined });
      } catch (err) {
        // What was answered before the failure stays owed: a code (kept in pendingCodes), a consent, a client.
        if (clientId && !consented && progress.callbackRequestId) {
          this.counts.consents += 1;
          this.answered(this.decisions, progress.callbackRequestId, 'consent');
          this.world.consentsWithoutCode.push({ clientId });
        } else if (clientId && !consented) this.world.clientsWithoutConsent.push({ clientId });
        return this.fail(`authorization flow ${n}`, err);
      }
    }
  }

  private async refreshes(): Promise<void> {
    while (!this.stopped) {
      const g = this.gatewayOnly ? undefined : this.pick(() => true);
      if (!g) {
        await sleep(20);
        continue;
      }
      g.busy = true;
      g.inflight = 'refresh';
      try {
        const r = await refresh(this.o.p, g.clientId, g.refreshes.at(-1) as string);
        g.inflight = undefined;
        if (r.status !== 200) this.fail(`refresh of grant ${g.n} answered ${r.status} ${JSON.stringify(r.body)}`);
        else {
          g.refreshes.push(r.body.refresh_token as string);
          g.access = r.body.access_token as string;
          this.counts.refreshes += 1;
          this.answered(this.decisions, r.requestId, 'refresh');
        }
      } catch (err) {
        this.fail(`refresh of grant ${g.n}`, err);
      } finally {
        g.busy = false;
      }
      await sleep(this.o.random() * 40);
    }
  }

  private async calls(): Promise<void> {
    while (!this.stopped) {
      // Gateway calls alone: no U refresh either (its audit row would commit the queue early).
      const g = this.pick((x) => !this.gatewayOnly || !x.rotatesUpstream);
      if (!g) {
        await sleep(20);
        continue;
      }
      g.busy = true;
      g.inflight = 'gateway';
      try {
        const r = await mcpCall(this.o.p, g.access, g.sessionId, (this.mcpId += 1));
        g.inflight = undefined;
        if (r.status !== 200) this.fail(`MCP call of grant ${g.n} answered ${r.status} ${r.body.text.slice(0, 200)}`);
        else {
          g.sessionId = r.sessionId;
          this.counts.gateway += 1;
          this.answered(this.gateway, r.requestId, 'gateway');
        }
      } catch (err) {
        this.fail(`MCP call of grant ${g.n}`, err);
      } finally {
        g.busy = false;
      }
    }
  }

  private async revocations(): Promise<void> {
    while (!this.stopped) {
      const before = this.world.grants.filter((g) => g.status === 'live').length;
      await sleep(before > this.o.maxLive ? 5 : 150 + this.o.random() * 300);
      const live = this.world.grants.filter((g) => g.status === 'live').length;
      if (this.stopped || this.gatewayOnly || live < 4 || (live <= this.o.maxLive && this.o.random() < 0.5)) continue;
      const g = this.pick(() => true);
      if (!g) continue;
      g.busy = true;
      g.inflight = 'revoke';
      try {
        const r = await adminRevoke(this.o.p, this.world.admin, g.clientId);
        g.inflight = undefined;
        if (r?.status !== 303) this.fail(`admin revocation of grant ${g.n} answered ${r?.status ?? 'no consent to revoke'}`);
        else {
          g.status = 'revoked';
          g.revokedBy = 'admin';
          this.counts.revocations += 1;
          this.answered(this.decisions, r.requestId, 'revocation');
        }
      } catch (err) {
        this.fail(`admin revocation of grant ${g.n}`, err);
      } finally {
        g.busy = false;
      }
    }
  }
}
