/**
 * The soak's traffic (issue 13 §4): what a small deployment sees all day, in a steady mix, from
 * closed-loop workers with short pauses (not a saturation benchmark):
 *   - new MCP clients authorizing (DCR → P's consent page → U's login → code → token), one flow
 *     at a time;
 *   - MCP sessions through the gateway: initialize, tool calls (whoami, echo, now and then a
 *     streamed countdown), and every ~50 calls the session ends (DELETE) and a new one starts;
 *   - refresh-token rotations;
 *   - requests the gateway refuses (no token, a revoked token) and refresh-token reuse;
 *   - an admin revoking the oldest consents on /admin, so the number of live grants stays
 *     around `liveGrants` and the run is a steady state, not a growing one.
 * Every answer that is not the expected one counts as an error.
 */
import { Browser, adminRevoke, authorize, mcpCall, redeem, refresh, register } from '../helpers/actors.js';
import { mcpPost } from '../helpers/mcp-http.js';

interface Grant {
  clientId: string;
  access: string;
  refresh: string;
  previous: string | undefined;
  sessionId: string | undefined;
  calls: number;
  busy: boolean;
}

export interface LoadCounts {
  authorizations: number;
  gateway: number;
  refreshes: number;
  refused: number;
  revocations: number;
  errors: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SoakLoad {
  stopped = false;
  readonly counts: LoadCounts = { authorizations: 0, gateway: 0, refreshes: 0, refused: 0, revocations: 0, errors: 0 };
  readonly errors: string[] = [];
  private readonly grants: Grant[] = [];
  private readonly admin = new Browser('soak-admin');
  private n = 0;

  constructor(
    private readonly p: string,
    private readonly liveGrants: number,
  ) {}

  get admins(): Browser {
    return this.admin;
  }

  run(): Promise<void> {
    return Promise.all([this.flows(), this.calls(), this.calls(), this.calls(), this.refreshes(), this.refusals(), this.revocations()]).then(() => undefined);
  }

  private error(what: string): void {
    this.counts.errors += 1;
    if (this.errors.length < 50) this.errors.push(what);
  }

  private pick(): Grant | undefined {
    const free = this.grants.filter((g) => !g.busy);
    return free[Math.floor(Math.random() * free.length)];
  }

  /** Run `work` on a free grant (one operation per grant at a time); false when none is free. */
  private async withGrant(work: (g: Grant) => Promise<void>): Promise<boolean> {
    const g = this.pick();
    if (!g) return false;
    g.busy = true;
    try {
      await work(g);
    } catch (err) {
      this.error((err as Error).message);
    } finally {
      g.busy = false;
    }
    return true;
  }

  /** Before the measured run: authorize until `liveGrants` grants are live, so the mix is steady from the first sample. */
  async seed(): Promise<void> {
    for (let i = 0; this.grants.length < this.liveGrants && i < this.liveGrants * 2; i++) await this.authorizeOne();
    if (this.grants.length < this.liveGrants) throw new Error(`could not seed ${this.liveGrants} grants: ${this.errors.join('; ')}`);
    this.counts.authorizations = 0;
  }

  private async authorizeOne(): Promise<void> {
    const n = (this.n += 1);
    try {
      const reg = await register(this.p, `Soak client ${n}`);
      if (reg.status !== 201) throw new Error(`registration ${reg.status}`);
      const clientId = reg.body.client_id;
      const auth = await authorize(this.p, new Browser(`soak-${n}`), clientId, `soak-user-${n % 200}`);
      const t = await redeem(this.p, clientId, auth.code, auth.verifier);
      if (t.status !== 200) throw new Error(`redeem ${t.status}`);
      this.grants.push({ clientId, access: t.body.access_token, refresh: t.body.refresh_token, previous: undefined, sessionId: undefined, calls: 0, busy: false });
      this.counts.authorizations += 1;
    } catch (err) {
      this.error(`authorization: ${(err as Error).message}`);
    }
  }

  private async flows(): Promise<void> {
    while (!this.stopped) {
      await this.authorizeOne();
      await sleep(400);
    }
  }

  private async call(g: Grant): Promise<void> {
    g.calls += 1;
    if (g.sessionId && g.calls % 50 === 0) return this.endSession(g);
    if (g.sessionId && g.calls % 25 === 0) {
      const r = await mcpPost(`${this.p}/mcp`, g.access, { jsonrpc: '2.0', id: g.calls, method: 'tools/call', params: { name: 'countdown', arguments: { from: 3 }, _meta: { progressToken: g.calls } } }, { 'mcp-session-id': g.sessionId });
      if (r.status !== 200 || r.messages.length !== 4) throw new Error(`countdown ${r.status} ${r.messages.length}`);
    } else {
      const r = await mcpCall(this.p, g.access, g.sessionId, g.calls);
      if (r.status !== 200) throw new Error(`MCP call ${r.status} ${r.body.text.slice(0, 120)}`);
      g.sessionId = r.sessionId;
    }
    this.counts.gateway += 1;
  }

  private async calls(): Promise<void> {
    while (!this.stopped) {
      if (!(await this.withGrant((g) => this.call(g)))) await sleep(50);
      await sleep(2);
    }
  }

  private async refreshes(): Promise<void> {
    while (!this.stopped) {
      await this.withGrant(async (g) => {
        const r = await refresh(this.p, g.clientId, g.refresh);
        if (r.status !== 200) throw new Error(`refresh ${r.status}`);
        g.previous = g.refresh;
        g.refresh = r.body.refresh_token;
        g.access = r.body.access_token;
        this.counts.refreshes += 1;
      });
      await sleep(100);
    }
  }

  /** End a grant's MCP session (DELETE through the gateway) before the grant ends, as a client would. */
  private async endSession(g: Grant): Promise<void> {
    if (!g.sessionId) return;
    const end = await fetch(`${this.p}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${g.access}`, 'mcp-session-id': g.sessionId, 'mcp-protocol-version': '2025-06-18' } });
    await end.arrayBuffer();
    g.sessionId = undefined;
    if (end.status !== 200) throw new Error(`session DELETE ${end.status}`);
    this.counts.gateway += 1;
  }

  /** Requests P must refuse: no token at the gateway; a reused refresh token (which ends that grant). */
  private async refusals(): Promise<void> {
    while (!this.stopped) {
      await sleep(500);
      const anonymous = await mcpPost(`${this.p}/mcp`, undefined, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      if (anonymous.status !== 401) this.error(`anonymous MCP request answered ${anonymous.status}`);
      else this.counts.refused += 1;
      if (this.grants.length < this.liveGrants) continue;
      await this.withGrant(async (g) => {
        if (!g.previous) return;
        await this.endSession(g);
        const reuse = await refresh(this.p, g.clientId, g.previous);
        if (reuse.status !== 400) throw new Error(`reused refresh token answered ${reuse.status}`);
        const after = await mcpCall(this.p, g.access, g.sessionId, 1);
        if (after.status !== 401) throw new Error(`a reused grant's access token answered ${after.status}`);
        this.grants.splice(this.grants.indexOf(g), 1);
        this.counts.refused += 2;
      });
    }
  }

  /** The admin revokes the oldest grants beyond `liveGrants`. */
  private async revocations(): Promise<void> {
    while (!this.stopped) {
      await sleep(200);
      const oldest = this.grants.find((g) => !g.busy);
      if (this.grants.length <= this.liveGrants || !oldest) continue;
      oldest.busy = true;
      try {
        await this.endSession(oldest);
        const r = await adminRevoke(this.p, this.admin, oldest.clientId);
        if (r?.status !== 303) throw new Error(`admin revocation answered ${r?.status}`);
        const after = await mcpCall(this.p, oldest.access, oldest.sessionId, 1);
        if (after.status !== 401) throw new Error(`a revoked grant's access token answered ${after.status}`);
        this.grants.splice(this.grants.indexOf(oldest), 1);
        this.counts.revocations += 1;
      } catch (err) {
        this.error(`revocation: ${(err as Error).message}`);
        oldest.busy = false;
      }
    }
  }
}
