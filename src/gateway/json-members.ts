/**
 * Member names that let two JSON parsers read one body two ways (for src/gateway/tool-policy.ts,
 * which decides; this only finds them). RFC 8259 §4: "The names within an object SHOULD be
 * unique"; when they are not, "the behavior of software that receives such an object is
 * unpredictable" — JSON.parse keeps the last, other parsers the first or refuse. And a parser that
 * matches names ignoring case (an option of several JSON libraries) reads `"Name"` as `"name"`.
 * So P, which judges a body with JSON.parse, looks for:
 * - the same name twice in any object (after unescaping: `"n\u0061me"` is `"name"`);
 * - in a JSON-RPC message object or its `params` (where P's decisions read `method`, `params`,
 *   `params.name`, `params.uri`, `params._meta`): two names equal ignoring case, and a name equal
 *   to one of those ignoring case but not exactly (`"Method"`, which P does not read and such a
 *   parser does). Tool arguments may differ in case on purpose, so deeper objects are held to
 *   exact names only.
 * The text must be JSON that JSON.parse accepted: the scan trusts its structure.
 */

interface Frame {
  object: boolean;
  /** a JSON-RPC message object or its params: names compared ignoring case too */
  envelope: boolean;
  /** a message object (its `params` member is an envelope) */
  message: boolean;
  names: Set<string>;
  /** envelope objects: the names folded (upper- then lower-cased, so `ſ` meets `s` and the Kelvin sign `k`) */
  folded: Set<string>;
  /** the last name read in this object (the member whose value comes next) */
  last: string;
  /** the next string in this object is a name */
  expectName: boolean;
}

/** The members P reads, per envelope level, by their folded names. */
const READ_IN_MESSAGE = new Set(['method', 'params']);
const READ_IN_PARAMS = new Set(['name', 'uri', '_meta']);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The first ambiguous member of `text` (a description, no value), or undefined. */
export function ambiguousMember(text: string): string | undefined {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = i + 1;
      let escaped = false;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (d === BACKSLASH) {
          escaped = true;
          end++;
        } else if (d === QUOTE) break;
      }
      const top = stack[stack.length - 1];
      if (top?.object && top.expectName) {
        const name = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        if (top.names.has(name)) return `the member "${name.slice(0, 100)}" appears twice in one object`;
        if (top.envelope) {
          const folded = name.toUpperCase().toLowerCase();
          if (top.folded.has(folded)) return `two members named "${name.slice(0, 100)}" ignoring case in a JSON-RPC message`;
          if (name !== folded && (top.message ? READ_IN_MESSAGE : READ_IN_PARAMS).has(folded)) return `the member "${name.slice(0, 100)}" differs from "${folded}" only in case`;
          top.folded.add(folded);
        }
        top.names.add(name);
        top.last = name;
        top.expectName = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      const parent = stack[stack.length - 1];
      const message = parent === undefined || (!parent.object && stack.length === 1);
      const envelope = message || (parent?.message === true && parent.last === 'params');
      stack.push({ object: true, envelope, message, names: new Set(), folded: new Set(), last: '', expectName: true });
    } else if (c === 0x5b /* [ */) {
      stack.push({ object: false, envelope: false, message: false, names: new Set(), folded: new Set(), last: '', expectName: false });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.object) top.expectName = true;
    }
  }
  return undefined;
}
