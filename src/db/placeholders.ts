/**
 * PostgreSQL's placeholders for the portable SQL of src/db/sql.ts: stores write `?`, the
 * PostgreSQL driver (src/db/pg-sql.ts) sends `$1..$n`, rewritten once per SQL text.
 */
export interface Positional {
  /** the SQL with `$1..$n` */
  text: string;
  /** how many placeholders */
  count: number;
}

/**
 * Rewrite `?` placeholders to `$1..$n`, skipping string literals ('…' with '' escapes; E'…' with
 * backslash escapes), quoted identifiers ("…"), dollar-quoted bodies ($tag$…$tag$), and comments
 * (-- to end of line, /* … *\/ nested as PostgreSQL nests them).
 */
export function toPositional(sql: string): Positional {
  let out = '';
  let count = 0;
  let i = 0;
  let from = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (c === '?') {
      out += `${sql.slice(from, i)}$${++count}`;
      i++;
      from = i;
    } else if (c === "'") {
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e') && (i < 2 || !/[\w$]/.test(sql.charAt(i - 2)));
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'") {
          if (sql[i + 1] === "'") i += 2;
          else break;
        } else i++;
      }
      i++;
    } else if (c === '"') {
      i = sql.indexOf('"', i + 1);
      while (i !== -1 && sql[i + 1] === '"') i = sql.indexOf('"', i + 2);
      i = i === -1 ? n : i + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      i = sql.indexOf('\n', i + 2);
      i = i === -1 ? n : i + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === '$' && (i === 0 || !/[\w$]/.test(sql.charAt(i - 1)))) {
      const tag = /^\$([A-Za-z_][\w]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
      } else i++;
    } else i++;
  }
  return { text: count === 0 ? sql : out + sql.slice(from), count };
}
