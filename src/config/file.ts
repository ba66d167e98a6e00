/**
 * CONFIG_FILE: an optional JSON or YAML file with the same keys as the environment (the
 * environment wins). Every problem is reported, never thrown alone; unknown keys are problems.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CONFIG_KEYS } from './schema.js';
import { describeJsonError, describeYamlError } from './syntax-error.js';

export type Source = Record<string, string | undefined>;

export function readConfigFile(path: string, problems: string[]): Source {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`CONFIG_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return {};
  }
  const yaml = ['.yaml', '.yml'].includes(extname(path).toLowerCase());
  let data: unknown;
  try {
    // logLevel 'error': yaml's warnings (an unknown tag…) go to stderr with a frame of the file's text.
    data = yaml ? parseYaml(raw, { logLevel: 'error' }) : JSON.parse(raw);
  } catch (err) {
    // Never the parser's message: it quotes the file, secrets included (src/config/syntax-error.ts).
    problems.push(`CONFIG_FILE: ${path} is not valid ${yaml ? `YAML: ${describeYamlError(err)}` : `JSON: ${describeJsonError(raw)}`}`);
    return {};
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    problems.push(`CONFIG_FILE: ${path} must contain an object of settings`);
    return {};
  }
  const out: Source = {};
  for (const [name, value] of Object.entries(data)) {
    if (!(CONFIG_KEYS as string[]).includes(name)) {
      problems.push(`CONFIG_FILE: unknown setting ${name} in ${path}`);
      continue;
    }
    out[name] = Array.isArray(value) ? value.join(' ') : value === null || value === undefined ? undefined : String(value);
  }
  return out;
}
