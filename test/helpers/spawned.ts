/**
 * Child processes for the release tests (test/e2e/package.test.ts, dockerfile.test.ts): run a
 * command to its end, or start a server and wait until it prints a line; every child started
 * is killed (SIGKILL, its whole process group when detached) by `killAll` in afterAll.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  /** everything written to stdout so far */
  stdout(): string;
  /** stdout and stderr so far, interleaved */
  output(): string;
  exited: Promise<number | null>;
}

const started: { child: ChildProcess; group: boolean }[] = [];

/** Run a command to its end (bounded by `timeoutMs`); resolves with its exit code and output. */
export function runToEnd(command: string, args: string[], options: SpawnOptions & { timeoutMs: number }): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push({ child, group: false });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} took longer than ${options.timeoutMs} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Start a long-running command and wait (at most `timeoutMs`) until its output contains
 * `waitFor`. With `group`, it leads its own process group, which can then be signalled as a
 * terminal (Ctrl-C) or a supervisor does: `process.kill(-pid, signal)`.
 */
export async function startUntil(command: string, args: string[], options: SpawnOptions & { waitFor: string; timeoutMs: number; group?: boolean }): Promise<Started> {
  const group = options.group ?? false;
  const child = spawn(command, args, { ...options, detached: group, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push({ child, group });
  let stdout = '';
  let output = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
    output += d;
  });
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  let failedToSpawn: Error | undefined;
  void spawnError.then((err) => (failedToSpawn = err));
  const since = Date.now();
  const deadline = since + options.timeoutMs;
  while (!output.includes(options.waitFor) && exitCode === undefined && !failedToSpawn && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // output that arrived during a pause of this process is read before the verdict (a timer may run first)
  if (!output.includes(options.waitFor)) await new Promise((r) => setImmediate(r));
  if (!output.includes(options.waitFor)) {
    // Why, on the first line: CI's summary keeps only that (.ci/run).
    const why = failedToSpawn
      ? `could not be started (${failedToSpawn.message})`
      : exitCode !== undefined
        ? `exited (code ${exitCode}) after ${Date.now() - since} ms`
        : `was still running after ${Date.now() - since} ms (its CPU time ${cpuSeconds(child.pid)}, load ${loadavg()[0]?.toFixed(1)})`;
    const last = output.trim().split('\n').at(-1)?.slice(0, 200) ?? '';
    throw new Error(`${command} ${args.join(' ')} ${why} without printing "${options.waitFor}"; its last line: ${JSON.stringify(last)}\n${output}`);
  }
  return { child, stdout: () => stdout, output: () => output, exited };
}

/** A running process's CPU time (user + system) from /proc, for a failure's message. */
function cpuSeconds(pid: number | undefined): string {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return `${((Number(fields[11]) + Number(fields[12])) / 100).toFixed(2)} s`; // utime, stime: clock ticks (100 Hz)
  } catch {
    return 'unknown';
  }
}

/** Resolves with the exit code, or rejects after `timeoutMs`. */
export function exitWithin(server: Started, timeoutMs: number): Promise<number | null> {
  return Promise.race([server.exited, new Promise<never>((_r, reject) => setTimeout(() => reject(new Error(`no exit within ${timeoutMs} ms:\n${server.output()}`)), timeoutMs))]);
}

export function killAll(): void {
  for (const { child, group } of started) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    try {
      process.kill(group ? -child.pid : child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The start-up banner `serve` prints (the lines from "listening" to the last hint), with the port made neutral. */
export function banner(stdout: string, port: number): string {
  const lines = stdout.split('\n').filter((l) => !l.startsWith('{'));
  const from = lines.findIndex((l) => l.includes('MCP Consent Proxy listening'));
  const to = lines.findLastIndex((l) => l.includes('--tool-name whoami'));
  return lines
    .slice(from, to + 1)
    .join('\n')
    .replaceAll(String(port), '<port>');
}
