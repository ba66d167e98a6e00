/**
 * Group commit for the SQLite engine (src/db/sqlite-sql.ts; issue 14). A COMMIT costs ~11 µs per
 * page written to the WAL on this class of machine (a frame is two `pwrite` calls) and a token
 * request writes ~18 pages, so transaction() does not commit at once: the first one opens a SQLite
 * transaction — a batch — and its COMMIT is due at the event loop's next check phase
 * (setImmediate); every transaction() that starts before then runs inside it, one after another,
 * each in a SAVEPOINT of its own, so a failure rolls back to it and only that transaction fails.
 * Each resolves, and its afterCommit callbacks run, only once the batch's COMMIT succeeded:
 * nothing is answered before it is durable. A failed COMMIT fails every transaction of the batch,
 * none of whose writes remain. Pages several of them touch (the audit log's last page and its
 * indexes' right edges, the token table's last page) are written once per batch. Once its COMMIT
 * is due, new transactions wait for the next batch, so none can hold one open for ever; the
 * COMMIT waits for a transaction still running in the batch.
 */
import type { Db } from './open.js';
import { runAfterCommit } from './sql.js';

/** One SQLite transaction shared by the transaction() calls that start before its COMMIT is due. */
export interface Batch {
  /** settles when the batch's COMMIT succeeded (or failed) */
  readonly committed: Promise<void>;
  /** the afterCommit callbacks of the transactions that finished their work in it */
  readonly callbacks: (() => void)[][];
  /** its COMMIT is due: a transaction() from now on waits for the next batch */
  closing: boolean;
}

/** A batch's COMMIT, successful or not. */
export function settled(batch: Batch): Promise<void> {
  return batch.committed.catch(() => undefined);
}

interface Control {
  begin: { run(): unknown };
  commit: { run(): unknown };
  rollback: { run(): unknown };
}

export class GroupCommit {
  /** the open batch, if any */
  current: Batch | null = null;
  #outcome = new WeakMap<Batch, { resolve(): void; reject(err: unknown): void }>();

  /** `running()`: the end of the transaction now running on the connection, if one is. */
  constructor(
    private readonly db: Db,
    private readonly control: Control,
    private readonly running: () => Promise<void> | undefined,
  ) {}

  /** The open batch, or a new one (BEGIN IMMEDIATE; throws as BEGIN does, the database locked past its busy timeout). */
  join(): Batch {
    if (this.current !== null) return this.current;
    this.control.begin.run();
    let outcome!: { resolve(): void; reject(err: unknown): void };
    const committed = new Promise<void>((resolve, reject) => (outcome = { resolve, reject }));
    const batch: Batch = { committed, callbacks: [], closing: false };
    this.#outcome.set(batch, outcome);
    this.current = batch;
    setImmediate(() => {
      batch.closing = true;
      this.#commit(batch);
    });
    return batch;
  }

  /** COMMIT once no transaction of the batch is running; its transactions resolve, or all fail. */
  #commit(batch: Batch): void {
    const running = this.running();
    if (running !== undefined) return void running.then(() => this.#commit(batch));
    this.current = null;
    const outcome = this.#outcome.get(batch)!;
    try {
      this.control.commit.run();
    } catch (err) {
      if (this.db.inTransaction) this.control.rollback.run();
      return outcome.reject(err);
    }
    for (const callbacks of batch.callbacks) runAfterCommit(callbacks);
    outcome.resolve();
  }
}
