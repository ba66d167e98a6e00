import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../../src/config/schema.js';
import { readmeConfigBlock } from '../helpers/config-docs.js';

describe('README', () => {
  it('carries the configuration reference generated from the schema (run npm run docs:config)', () => {
    expect(readmeConfigBlock()).toBe(renderConfigReference());
  });

  it('README.md and SECURITY.md cite only files that exist (audit 2026-12-07: a stale citation went unnoticed)', () => {
    const missing: string[] = [];
    for (const doc of ['README.md', 'SECURITY.md']) {
      for (const [, cited] of readFileSync(doc, 'utf8').matchAll(/`((?:src|test|migrations|docs|views|\.ci)\/[^`\s]*)`/g)) {
        const path = (cited as string).replace(/[.,;:]+$/, '').split('#')[0] as string;
        // Generated output (test/artifacts/), abbreviated names (`0008-…`) and patterns are not files to check.
        if (path.startsWith('test/artifacts/') || /[…*<>{}]/.test(path)) continue;
        if (!existsSync(path)) missing.push(`${doc}: ${cited}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("docs/CHANGELOG.md's newest entry is the package's version and names the newest migration of each engine", () => {
    const changelog = readFileSync('docs/CHANGELOG.md', 'utf8');
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const newest = changelog.split('\n').find((line) => line.startsWith('## '));
    expect(newest).toMatch(new RegExp(`^## ${version.replaceAll('.', '\\.')}( |$)`));
    const entry = changelog.slice(changelog.indexOf(newest as string)).split('\n## ')[0] as string;
    for (const dir of ['migrations', 'migrations/postgres']) {
      const last = readdirSync(dir).filter((f) => /^\d{4}-.*\.sql$/.test(f)).sort().at(-1) as string;
      expect(entry, dir).toContain(`\`${last}\``);
    }
  });
});
