/**
 * Finding of the crash suite (test/crash, issue 13): the checkpoint file is written to a temp
 * file and renamed over (DESIGN §9, "written atomically at every commit"); a SIGKILL between the
 * two leaves `audit-checkpoint.json.<pid>.<n>.tmp` behind, and every crash added one more to the
 * data directory (6 after 20 kills), forever. A writer starting up now removes the temp files of
 * writers that are gone — a process no longer running, or an earlier process that had this one's
 * pid (PID 1 in a container) — and never those of a live writer (the CLI next to the server).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { randomBytes } from 'node:crypto';
import { createCheckpointWriter } from '../../src/audit/checkpoint.js';

const key = { kid: 'test-kid', key: randomBytes(32) };
const log = pino({ level: 'silent' });

/** A pid that certainly belongs to no running process: one that just exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  return child.pid as number;
}

describe('checkpoint temp files left by a killed process', () => {
  it('are removed when the next writer starts; a live writer’s are kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cp-temp-'));
    const path = join(dir, 'audit-checkpoint.json');
    const dead = deadPid();
    // What a kill between writeFile and rename leaves: an older process's, and one of an earlier
    // process that had this very pid (a container's PID 1 after a restart).
    writeFileSync(`${path}.${dead}.7.tmp`, '{"v":1}');
    writeFileSync(`${path}.${process.pid}.3.tmp`, '{"v":1}');
    // A temp file of a process that is running (the parent of this test runner).
    writeFileSync(`${path}.${process.ppid}.1.tmp`, '{"v":1}');
    writeFileSync(join(dir, 'unrelated.tmp'), 'x');

    const writer = createCheckpointWriter(path, key, log);
    expect(readdirSync(dir).sort()).toEqual([`audit-checkpoint.json.${process.ppid}.1.tmp`, 'unrelated.tmp'].sort());

    // The new writer's own temp files are still renamed into place, and it leaves none behind.
    writer.update({ seq: 1, hash: 'a'.repeat(64), key_id: key.kid });
    await writer.settled();
    await writer.flush();
    expect(readdirSync(dir).sort()).toEqual(['audit-checkpoint.json', `audit-checkpoint.json.${process.ppid}.1.tmp`, 'unrelated.tmp'].sort());
  });

  it('a second writer in the same process does not remove the first one’s temp files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cp-temp-'));
    const path = join(dir, 'audit-checkpoint.json');
    const first = createCheckpointWriter(path, key, log);
    first.update({ seq: 1, hash: 'b'.repeat(64), key_id: key.kid });
    // The first writer's write is in flight (temp file written, not yet renamed) while a second
    // writer starts: it must not take the temp file away from under the first one.
    createCheckpointWriter(path, key, log);
    await first.settled();
    expect(readdirSync(dir)).toEqual(['audit-checkpoint.json']);
  });
});
