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
 * - U+0000 in a name of those objects, or in the value of `method`, `params.name` or `params.uri`
 *   (a parser that keeps strings as C strings reads `"rm\u0000x"` as `rm`), and a member named
 *   `__proto__` anywhere (JSON.parse makes it an own member; a parser or a copy that assigns it
 *   sets the object's prototype, and `params.name` then comes from it).
 * The text must be JSON that JSON.parse accepted: the scan trusts its structure. It allocates
 * little per level, so a body nested as deep as GATEWAY_MAX_BODY allows costs about what
 * JSON.parse costs (review 2026-12-06: a Set per level made a 4 MB `[[[…]]]` cost ~865 MB).
 */

interface Frame {
  object: boolean;
  /** a JSON-RPC message object or its params: names compared ignoring case too */
  envelope: boolean;
  /** a message object (its `params` member is an envelope) */
  message: boolean;
  /** the names read so far (made at the first name: a deep `[[[…]]]` or `{"a":{"a":…}}` allocates little) */
  names: Set<string> | undefined;
  /** envelope objects: the names folded (upper- then lower-cased, so `ſ` meets `s` and the Kelvin sign `k`) */
  folded: Set<string> | undefined;
  /** the last name read in this object (the member whose value comes next) */
  last: string;
  /** the next string in this object is a name */
  expectName: boolean;
}

/** Every array's frame: nothing in it changes (arrays have no names), so one is shared. */
const ARRAY: Readonly<Frame> = Object.freeze({ object: false, envelope: false, message: false, names: undefined, folded: undefined, last: '', expectName: false });

/** The members P reads, per envelope level, by their folded names. */
const READ_IN_MESSAGE = new Set(['method', 'params']);
const READ_IN_PARAMS = new Set(['name', 'uri', '_meta']);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The values P reads as names, per envelope level: one with U+0000 reads shorter to a C-string parser. */
const VALUES_IN_MESSAGE = new Set(['method']);
const VALUES_IN_PARAMS = new Set(['name', 'uri']);

/** Why the name `name` of object `top` leaves room for another reading, if it does. */
function ambiguousName(top: Frame, name: string): string | undefined {
  const shown = name.slice(0, 100);
  // JSON.parse makes "__proto__" an own member; a parser or copy that assigns it sets the prototype instead.
  if (name === '__proto__') return 'a member named "__proto__"';
  if (top.names?.has(name)) return `the member "${shown}" appears twice in one object`;
  if (!top.envelope) return undefined;
  if (name.includes('\u0000')) return 'a member name with U+0000 in a JSON-RPC message';
  const folded = name.toUpperCase().toLowerCase();
  if (top.folded?.has(folded)) return `two members named "${shown}" ignoring case in a JSON-RPC message`;
  if (name !== folded && (top.message ? READ_IN_MESSAGE : READ_IN_PARAMS).has(folded)) return `the member "${shown}" differs from "${folded}" only in case`;
  (top.folded ??= new Set()).add(folded);
  return undefined;
}

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
      if (top?.object) {
        const value = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        if (top.expectName) {
          const why = ambiguousName(top, value);
          if (why) return why;
          (top.names ??= new Set()).add(value);
          top.last = value;
          top.expectName = false;
        } else if (escaped && top.envelope && value.includes('\u0000') && (top.message ? VALUES_IN_MESSAGE : VALUES_IN_PARAMS).has(top.last)) {
          return `the value of "${top.last}" contains U+0000`;
        }
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      const parent = stack[stack.length - 1];
      const message = parent === undefined || (!parent.object && stack.length === 1);
      const envelope = message || (parent?.message === true && parent.last === 'params');
      stack.push({ object: true, envelope, message, names: undefined, folded: undefined, last: '', expectName: true });
    } else if (c === 0x5b /* [ */) {
      stack.push(ARRAY as Frame);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.object) top.expectName = true;
    }
  }
  return undefined;
}
