/**
 * What `serve` loads at start (issue 14, memory): the pg driver only with DATABASE_URL, the MCP SDK
 * only in demo mode — each is loaded by a dynamic import() where it is needed (src/runtime/core.ts,
 * src/runtime/server.ts, src/cli/doctor/database.ts). Measured 2026-12-05: a non-demo SQLite
 * `serve` at rest 111 MB RSS instead of 127 MB. This walks the static imports from the entry
 * points (type-only imports are erased and do not count) and fails if one reaches either package.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const STATIC_IMPORT = /(?:^|\n)\s*(?:import|export)(?!\s+type\b)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

function source(path: string): string {
  for (const candidate of [path, path.replace(/\.js$/, '.ts')]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // try the next
    }
  }
  throw new Error(`no source for ${path}`);
}

/** Every package reached by static imports from `entry`, with the chain of files that reaches it. */
function staticPackages(entry: string): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const seen = new Set<string>();
  const walk = (file: string, chain: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const specifier = (m[1] ?? m[2]) as string;
      const here = [...chain, relative(SRC, file)];
      if (specifier.startsWith('.')) walk(source(resolve(dirname(file), specifier)), here);
      else if (!specifier.startsWith('node:') && !packages.has(specifier)) packages.set(specifier, here);
    }
  };
  walk(source(resolve(SRC, entry)), []);
  return packages;
}

// cli/bin.ts: every command (serve is imported when it runs); cli/commands/serve.ts: the server.
it.each(['cli/bin.ts', 'cli/commands/serve.ts'])('%s loads neither pg nor the MCP SDK until a configuration needs them', (entry) => {
  const packages = staticPackages(entry);
  const heavy = [...packages].filter(([name]) => name === 'pg' || name.startsWith('pg/') || name.startsWith('@modelcontextprotocol/sdk'));
  expect(heavy.map(([name, chain]) => `${name} via ${chain.join(' → ')}`)).toEqual([]);
  // The walk itself works: the SQLite engine every command needs is reached.
  expect(packages.has('better-sqlite3')).toBe(true);
  if (entry.endsWith('serve.ts')) expect(packages.has('oidc-provider') && packages.has('express') && packages.has('undici')).toBe(true);
});
