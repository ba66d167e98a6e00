// ESLint (flat config; `npm run lint`, part of `npm test` and CI). The rules that keep the house
// in order enforce themselves here (README "Architecture"):
// - layers: a folder of src/ may import only from its own layer and the layers below it (LAYERS,
//   lowest first); written once, here, and turned into import-x/no-restricted-paths zones;
// - no import cycles (import-x/no-cycle), between files as between folders;
// - no file over 300 lines and no function over 60 (the configuration schema, a table of every
//   setting, excepted);
// - typescript-eslint's recommended rules, and no promise left floating or tested as a condition
//   (type-aware, src/ only); formatting is Prettier's (.prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/** The layers of src/, lowest first: each may import from the ones before it, never after. */
export const LAYERS = [
  ['config', 'crypto', 'log', 'types', 'views'], // leaves: settings, keys, logging, templates
  ['errors', 'http'], // the error model and writer; HTTP plumbing (cookies, CSRF, CSP, context)
  ['db'], // opening and migrating the database
  ['store'], // the only place with SQL: one module per table
  ['audit'], // the audit service, its chain verification and refusal tallies
  ['oauth', 'upstream', 'cimd'], // OAuth policies (admission, redirect URIs, scopes); the upstream client; the CIMD fetcher
  ['provider'], // oidc-provider configured for P
  ['consent'], // consent status, decision, recording, revocation, operator actions
  ['session'], // P's browser session, the browser-bound upstream login, sign-in
  ['gateway'], // token check, forwarder, scrubber, session bindings
  ['flow'], // the steps of DESIGN §2 over HTTP
  ['admin', 'account', 'demo'], // pages
  ['runtime'], // the composition root
  ['cli'], // the command line
];

const zones = LAYERS.flatMap((layer, i) =>
  layer.map((dir) => ({
    target: `./src/${dir}`,
    from: LAYERS.slice(i + 1)
      .flat()
      .map((higher) => `./src/${higher}`),
    message: `src/${dir} sits below these folders (LAYERS in .eslint.config.js): move the shared piece down instead`,
  })),
).filter((zone) => zone.from.length > 0);

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test/artifacts/**', 'test/screenshots/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'src/**/*.js'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones }],
      'max-lines': ['error', { max: 300, skipBlankLines: false, skipComments: false }],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: false, skipComments: false, IIFEs: true }],
    },
  },
  {
    // The configuration schema is one table of every setting (README's reference is generated from it).
    files: ['src/config/schema.ts'],
    rules: { 'max-lines': 'off', 'max-lines-per-function': 'off' },
  },
  {
    // Plain JavaScript entry points run on Node.
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // The stores are asynchronous (SQLite and PostgreSQL behind one interface, src/db/sql.ts):
    // a write or an audit record nobody awaits would answer before it is committed, and a
    // promise tested as a condition is always true. Both are refused; a deliberate
    // fire-and-forget says so with `void` and handles its failure.
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
);
