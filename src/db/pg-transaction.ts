/**
 * One PostgreSQL transaction's connection (src/db/pg-sql.ts `transaction`), pipelined: pg's
 * pipeline mode sends each statement at once, with its own Sync, and PostgreSQL answers them in
 * order — a statement that fails is answered with its error and every later one of the
 * transaction with "current transaction is aborted", so no write slips past a failure. What that
 * buys is round trips (issue 11): BEGIN leaves with the transaction's first statement, and a write
 * whose answer is not needed (`Sql.runLater`) leaves corked with the next statement that is waited
 * for, or with COMMIT — one socket write and one round trip for all of them.
 */
import type pg from 'pg';

export class Tx {
  /** fn has settled: statements from its context from now on go to the pool */
  closing = false;
  failed: unknown = undefined;
  /** afterCommit callbacks, run once COMMIT succeeded */
  readonly committed: (() => void)[] = [];
  /** afterCommit's `ifUnknown` callbacks, run when COMMIT was tried and no answer came back (`commitUnanswered`) */
  readonly unknown: (() => void)[] = [];
  /** committed (callbacks run) or rolled back: afterCommit from its context runs at once from now on */
  finished = false;
  /** BEGIN was sent (with the transaction's first statement) */
  begun = false;
  /** the connection's socket is corked: statements sent since wait for the next one that needs its answer */
  #corked = false;
  readonly #stream: { cork(): void; uncork(): void };
  constructor(readonly client: pg.PoolClient) {
    this.#stream = (client as unknown as { connection: { stream: { cork(): void; uncork(): void } } }).connection.stream;
  }

  /**
   * Send a statement now, pipelined behind those sent before it (the client runs in pg's pipeline
   * mode: each statement is its own Sync, answered in order). The first one is preceded by BEGIN.
   * `later`: its answer is not waited for — the socket stays corked, so it leaves with the next
   * statement that is waited for (or COMMIT) in one write; its failure dooms the transaction.
   */
  send(config: pg.QueryConfig | string, later = false): Promise<pg.QueryResult> {
    if (!this.#corked) {
      this.#stream.cork();
      this.#corked = true;
      setImmediate(() => this.flush()); // never left corked past this turn of the event loop
    }
    if (!this.begun) {
      this.begun = true;
      void this.#note(this.client.query('BEGIN'));
    }
    const result = this.#note(this.client.query(config as pg.QueryConfig));
    if (!later) this.flush();
    return result;
  }

  /** COMMIT was tried and no answer came back (sent or not, the connection lost, or an error in its place): whether it committed is not known */
  get commitUnanswered(): boolean {
    return this.#commit === 'sent';
  }
  #commit: 'sent' | 'answered' | undefined;

  /** COMMIT; throws when the transaction did not commit (or its answer was lost: `commitUnanswered`). */
  async commit(): Promise<void> {
    this.#commit = 'sent';
    const done = await this.send('COMMIT');
    this.#commit = 'answered';
    // Statements sent without waiting (runLater) may still be unanswered: had one failed,
    // PostgreSQL answers COMMIT with ROLLBACK, and no error (found by review) — that failure is the error.
    if (this.failed !== undefined) throw this.failed;
    if (done.command !== 'COMMIT') throw new Error(`COMMIT ended as ${done.command}: the transaction was rolled back`);
  }

  /** Send what is corked. */
  flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#stream.uncork();
  }

  /** The first failure dooms the transaction (PostgreSQL refuses the rest): noted as soon as it is answered. */
  #note(result: Promise<pg.QueryResult>): Promise<pg.QueryResult> {
    result.then(undefined, (err: unknown) => {
      this.failed ??= err;
    });
    return result;
  }
}
