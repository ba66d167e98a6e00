/**
 * The bench's servers run compiled, as the package ships (`dist/`), not through tsx: tsx's loader
 * (a thread of its own, and every transformed source kept) adds about 40 MB to a process's RSS —
 * the same `serve` measured 153–155 MB at rest through tsx against 111–114 MB compiled (README
 * "Memory") — and RSS is one of the bench's targets.
 *
 * `compileForBench()` transpiles src/ and the bench's own modules (test/bench/, test/helpers/:
 * the in-process fake upstream IdP and the flow helpers that seed tokens) with TypeScript's
 * `transpileModule` — the compiler options of tsconfig.json, no type check (`npm run typecheck`
 * does that) — into test/artifacts/bench-build/ with the repository's layout, and links in the
 * directories P reads next to its code (views/, migrations/, package.json), so every
 * `new URL('../../views/', import.meta.url)` resolves as it does from dist/. Packages resolve from
 * the repository's node_modules (the build lies inside the checkout). A few seconds of work.
 */
import ts from 'typescript';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** Directories transpiled, relative to the checkout. */
const SOURCES = ['src', 'test/bench', 'test/helpers'];
/** What P reads next to its code, linked into the build. */
const LINKED = ['views', 'migrations', 'package.json'];

/** Build into `<root>/test/artifacts/bench-build`; returns that directory. */
export function compileForBench(root: string): string {
  const out = join(root, 'test/artifacts/bench-build');
  rmSync(out, { recursive: true, force: true });
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), (p) => ts.sys.readFile(p));
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  // ES modules, as package.json's "type" makes every .js (transpileModule cannot look that up itself).
  const compilerOptions: ts.CompilerOptions = { ...options, module: ts.ModuleKind.ES2022, moduleResolution: ts.ModuleResolutionKind.Bundler, noEmit: false, sourceMap: false, declaration: false };
  for (const dir of SOURCES) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
      const file = join(root, dir, entry);
      const target = join(out, relative(root, file));
      const typescript = file.endsWith('.ts') && !file.endsWith('.d.ts');
      if (!typescript && !/\.(?:js|mjs|cjs|json)$/.test(file)) continue; // directories, .d.ts
      mkdirSync(dirname(target), { recursive: true });
      if (typescript) writeFileSync(target.replace(/\.ts$/, '.js'), ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions, fileName: file }).outputText);
      else cpSync(file, target);
    }
  }
  for (const name of LINKED) symlinkSync(join(root, name), join(out, name));
  return out;
}
