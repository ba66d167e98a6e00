/**
 * SECRET_KEY when the operator gave none: generated once into `<data dir>/secret.key` (mode
 * 0600) and reused on every start, with a warning each time (DESIGN §4).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ResolvedSecret {
  key: Buffer;
  /** set when the key came from (or was written to) the data directory */
  generatedFile?: string;
  created?: boolean;
}

/**
 * SECRET_KEY, or the generated one in the data directory; with `create` (the server), one is
 * generated when neither exists. Without it (the CLI, which must use the server's key) that case
 * is undefined.
 */
export function resolveSecretKey(configured: Buffer | undefined, dataDir: string, options: { create?: boolean } = {}): ResolvedSecret | undefined {
  if (configured) return { key: configured };
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length < 32) throw new Error(`${file} holds fewer than 32 bytes; delete it to generate a new one or set SECRET_KEY`);
    return { key, generatedFile: file, created: false };
  }
  if (options.create === false) return undefined;
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return { key, generatedFile: file, created: true };
}
