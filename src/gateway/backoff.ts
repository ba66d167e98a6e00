/**
 * A background retry with a doubling pause: `attempt` runs `firstMs` after `schedule()`, and again
 * after twice the pause (at most `maxMs`) for as long as it reports work left; once it reports
 * none the pause starts over at `firstMs` on the next `schedule()`. The timer never keeps the
 * process alive, and `close()` ends it for good. (Used for refreshed upstream tokens the
 * database did not take: src/gateway/upstream-token.ts.)
 */
export class Backoff {
  #timer: NodeJS.Timeout | undefined;
  #delayMs: number;
  #closed = false;

  constructor(
    private readonly attempt: () => Promise<number>,
    private readonly firstMs: number,
    private readonly maxMs: number,
  ) {
    this.#delayMs = firstMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.attempt().then((left) => {
        this.#timer = undefined;
        this.#delayMs = left > 0 ? Math.min(this.#delayMs * 2, this.maxMs) : this.firstMs;
        if (left > 0) this.schedule();
      });
    }, this.#delayMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
