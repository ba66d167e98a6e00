/**
 * How work on one grant's U tokens is ordered inside a process (src/gateway/upstream-token.ts):
 * - `shared`: requests that ask while a refresh — or U's word on a token R refused — is under way
 *   for the grant get its result; U is asked once (GW-14);
 * - `inTurn`: a refresh and a background save of the same grant run one after the other, never
 *   together (U must never see one of its refresh tokens twice: RFC 9700 §4.14.2).
 */
export class PerGrant<T> {
  private readonly inflight = new Map<string, Promise<T>>();
  /** per grant, the refresh or background save running now */
  private readonly turns = new Map<string, Promise<unknown>>();

  /** `work` for the grant, shared by whoever asks until it settles. */
  shared(grantId: string, work: () => Promise<T>): Promise<T> {
    let pending = this.inflight.get(grantId);
    if (!pending) {
      pending = work().finally(() => this.inflight.delete(grantId));
      this.inflight.set(grantId, pending);
    }
    return pending;
  }

  /** `fn` after whatever runs for the grant already. */
  inTurn<R>(grantId: string, fn: () => Promise<R>): Promise<R> {
    const run = (this.turns.get(grantId) ?? Promise.resolve()).then(fn);
    const done = run.catch(() => undefined);
    this.turns.set(grantId, done);
    void done.then(() => this.turns.get(grantId) === done && this.turns.delete(grantId));
    return run;
  }

  /** what runs now, for every grant (shutdown waits for it) */
  running(): Promise<unknown>[] {
    return [...this.turns.values()];
  }
}
