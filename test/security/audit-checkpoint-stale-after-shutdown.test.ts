/**
 * Finding of the crash suite (test/crash, issue 13): after a graceful stop the checkpoint file
 * was sometimes rows behind the head — `system.stopped` and the refusal counts flushed with it not
 * covered — although README promises "on shutdown it is written synchronously" (DESIGN §9).
 * The race: an asynchronous write of an older head had passed its "is a newer head already on
 * disk?" check and was renaming its temp file over the checkpoint when the shutdown's synchronous
 * flush wrote the newest head; the older rename landed last. The process then exited with the
 * file behind, so the last rows could be cut while the server was down and a restart would move
 * the file on from the older row: the cut would go unnoticed.
 * With the asynchronous stores (issue 11) the shutdown's flush is asynchronous too: it waits for
 * the write in flight and then writes the newest head, one write at a time, so an older rename can
 * no longer land after a newer one. This test keeps the guarantee: once flush() resolves, the file
 * holds the newest head, whatever rename was in flight when it was called.
 * The rename is held here (fs/promises mocked) to make the interleaving deterministic.
 */
import { describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';

const held: { release?: () => void; started?: () => void } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    rename: async (from: string, to: string) => {
      if (held.started) {
        // The asynchronous rename is under way: it lands only when the test says so.
        const release = new Promise<void>((resolve) => (held.release = resolve));
        held.started();
        await release;
      }
      return real.rename(from, to);
    },
  };
});

const { createCheckpointWriter, readCheckpointFile } = await import('../../src/audit/checkpoint.js');

const key = { kid: 'kid-1', key: randomBytes(32) };
const head = (seq: number) => ({ seq, hash: seq.toString(16).padStart(64, '0'), key_id: key.kid });

describe('audit checkpoint stale after shutdown', () => {
  it('a flush at shutdown during an asynchronous rename leaves the newest head in the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cp-shutdown-'));
    const path = join(dir, 'audit-checkpoint.json');
    const writer = createCheckpointWriter(path, key, pino({ level: 'silent' }));
    const renaming = new Promise<void>((resolve) => (held.started = resolve));

    writer.update(head(41)); // a commit while serving: written off the event loop
    await renaming; // …its temp file is written and its rename is in flight
    held.started = undefined;
    writer.update(head(45)); // the last commits: the refusal counts and system.stopped
    const flushed = writer.flush(); // shutdown: the newest head
    held.release?.(); // the older rename lands while the flush waits
    await flushed;
    const read = readCheckpointFile(path, [key]);
    expect(read).toMatchObject({ status: 'ok', checkpoint: { seq: 45, mac: head(45).hash } });
    expect(JSON.parse(readFileSync(path, 'utf8')).seq).toBe(45);
  });
});
