/**
 * A Content-Security-Policy header as its directives, so tests assert a directive's source list
 * exactly (a `toContain` on the header text would pass with extra sources appended). Refuses a
 * header holding more than one policy or naming a directive twice: the browser would enforce
 * each policy, or only the first of two directives, and a test must not read past that.
 */
export function cspDirectives(header: string | null): Record<string, string[]> {
  if (header === null) throw new Error('no Content-Security-Policy header');
  if (header.includes(',')) throw new Error(`more than one policy: ${header}`);
  const directives: Record<string, string[]> = {};
  for (const part of header.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (!name) continue;
    const key = name.toLowerCase();
    if (key in directives) throw new Error(`directive ${key} twice: ${header}`);
    directives[key] = sources;
  }
  return directives;
}
