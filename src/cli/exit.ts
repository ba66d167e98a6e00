/**
 * How long a finished command's process may stay alive for what a library left open (pg keeps a
 * connection after a failed SCRAM exchange): src/cli/bin.ts and src/main.ts exit after it.
 */
export const EXIT_GRACE_MS = 3_000;
