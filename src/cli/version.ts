/**
 * The package's version, read from its package.json: two folders up from src/cli/ (running the
 * sources) and from dist/cli/ (the compiled build, as installed from the package) alike.
 */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}
