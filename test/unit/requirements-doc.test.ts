/**
 * docs/requirements.md defines every requirement and attack ID the repository cites (issue 10,
 * item 8): an ID written in a comment, a test name, a migration, a view, another doc, README or
 * SECURITY.md must be a row (or heading) of that file, so `CONS-13` can always be looked up.
 * Shorthands count as citations of every ID they cover: `STATE-01..08` (a range) and
 * `REG-04/05/06` (a list). The file also keeps its own shape: every entry of the checklist, each
 * family numbered from 01 without gaps, each ID defined once with every column filled, and every
 * repository path it names existing.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC = 'docs/requirements.md';
const FAMILY = '(?:DISC|REG|CIMD|AUTHZ|CONS|STATE|UP|TOK|RT|GW|SEC|AT)';
/** Where IDs are cited: directories walked recursively, and single files. */
const CITING_DIRS = ['src', 'test', 'migrations', 'views', 'docs'];
const CITING_FILES = ['README.md', 'SECURITY.md'];
const TEXT_FILE = /\.(?:ts|js|mjs|cjs|sql|eta|css|md|json|ya?ml|html)$/;
const SKIP_DIRS = new Set(['node_modules', 'artifacts', 'screenshots']);
/** How many IDs each family of the project's requirements checklist has. */
const CHECKLIST_SIZE = { DISC: 15, REG: 13, CIMD: 8, AUTHZ: 13, CONS: 19, STATE: 8, UP: 10, TOK: 11, RT: 6, GW: 17, SEC: 3, AT: 23 };

/** Every ID a text cites, with `..NN` ranges and `/NN` lists expanded. */
function citedIds(text: string): string[] {
  const ids: string[] = [];
  const citation = new RegExp(`\\b(${FAMILY})-(\\d{2})\\b((?:(?:\\.\\.|/)\\d{2}\\b)*)`, 'g');
  for (const [, family, first, more] of text.matchAll(citation)) {
    let previous = Number(first);
    ids.push(`${family}-${first}`);
    for (const [, op, num] of (more ?? '').matchAll(/(\.\.|\/)(\d{2})/g)) {
      const n = Number(num);
      const from = op === '..' ? previous + 1 : n;
      for (let i = from; i <= n && i - from < 100; i++) ids.push(`${family}-${String(i).padStart(2, '0')}`);
      previous = n;
    }
  }
  return ids;
}

function citingFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) walk(path);
      } else if (TEXT_FILE.test(entry.name) && path !== DOC) {
        files.push(path);
      }
    }
  };
  for (const dir of CITING_DIRS) if (existsSync(join(ROOT, dir))) walk(dir);
  return [...files, ...CITING_FILES];
}

/** ID → the table cells of its row (a heading counts as a definition with no cells). */
function definitions(doc: string): { defined: Map<string, string[]>; duplicates: string[] } {
  const defined = new Map<string, string[]>();
  const duplicates: string[] = [];
  const row = new RegExp(`^\\|\\s*(${FAMILY}-\\d{2})\\s*\\|(.*)\\|\\s*$`);
  const heading = new RegExp(`^#{1,6}\\s+(${FAMILY}-\\d{2})\\b`);
  for (const line of doc.split('\n')) {
    const asRow = row.exec(line);
    const asHeading = heading.exec(line);
    const id = asRow?.[1] ?? asHeading?.[1];
    if (!id) continue;
    if (defined.has(id)) duplicates.push(id);
    defined.set(id, asRow ? (asRow[2] as string).split('|').map((cell) => cell.trim()) : []);
  }
  return { defined, duplicates };
}

const doc = readFileSync(join(ROOT, DOC), 'utf8');
const { defined, duplicates } = definitions(doc);

describe('docs/requirements.md', () => {
  it('reads shorthand citations as every ID they cover', () => {
    expect(citedIds('STATE-01..03, REG-04/05, GW-02/GW-03 and AT-10; CONS-13.')).toEqual([
      'STATE-01', 'STATE-02', 'STATE-03', 'REG-04', 'REG-05', 'GW-02', 'GW-03', 'AT-10', 'CONS-13',
    ]);
    expect(citedIds('TOK-02..05, TOK-08 and DISC-05/06/07..09')).toEqual([
      'TOK-02', 'TOK-03', 'TOK-04', 'TOK-05', 'TOK-08', 'DISC-05', 'DISC-06', 'DISC-07', 'DISC-08', 'DISC-09',
    ]);
    expect(citedIds('FORMAT-01, ABC-12, step-12, RFC 6749 §4.1.2.1')).toEqual([]);
  });

  it('defines every ID cited in the code, tests, migrations, views, README and SECURITY.md', () => {
    const undefinedIds = new Map<string, Set<string>>();
    let citations = 0;
    for (const file of citingFiles()) {
      for (const id of citedIds(readFileSync(join(ROOT, file), 'utf8'))) {
        citations++;
        if (!defined.has(id)) undefinedIds.set(id, (undefinedIds.get(id) ?? new Set()).add(file));
      }
    }
    expect(citations).toBeGreaterThan(100); // the scan found the citations at all
    const report = [...undefinedIds].map(([id, files]) => `${id} (cited in ${[...files].join(', ')})`);
    expect(report, `add these IDs to ${DOC}`).toEqual([]);
  });

  it('defines every ID of the checklist once: each family numbered from 01 without gaps', () => {
    expect(duplicates).toEqual([]);
    const byFamily = new Map<string, number[]>();
    for (const id of defined.keys()) {
      const [family, num] = id.split('-') as [string, string];
      byFamily.set(family, [...(byFamily.get(family) ?? []), Number(num)]);
    }
    for (const [family, nums] of byFamily) {
      expect(nums.sort((a, b) => a - b), family).toEqual(nums.map((_, i) => i + 1));
    }
    // The checklist's size per family; a new checklist entry is a new row here and a new count.
    expect(Object.fromEntries([...byFamily].map(([family, nums]) => [family, nums.length]))).toEqual(CHECKLIST_SIZE);
  });

  it('fills every column of every row: rule, level, source, enforced in, tested by (attack, defence, tested by for AT)', () => {
    const incomplete = [...defined]
      .filter(([id, cells]) => cells.length !== (id.startsWith('AT-') ? 3 : 5) || cells.some((cell) => cell === ''))
      .map(([id]) => id);
    expect(incomplete).toEqual([]);
  });

  it('names only repository paths that exist', () => {
    const paths = [...doc.matchAll(/`((?:src|test|migrations|views|docs)\/[^`\s]+)`/g)].map((m) => m[1] as string);
    expect(paths.length).toBeGreaterThan(50);
    expect([...new Set(paths)].filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});
