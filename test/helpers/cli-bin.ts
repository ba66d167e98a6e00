/**
 * How tests start the command line from the sources: Node with tsx's loader on src/cli/bin.ts.
 * The package's `bin` is its compiled form, dist/cli/bin.js (test/e2e/package.test.ts runs that,
 * installed from the packed tarball).
 */
export const CLI_ARGS = ['--import', 'tsx', new URL('../../src/cli/bin.ts', import.meta.url).pathname];
