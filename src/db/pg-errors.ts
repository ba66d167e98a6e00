/**
 * A failed PostgreSQL connection in words an operator can act on (`migrate`, `serve`, the CLI and
 * `doctor` alike). No import of `pg` here: SQLite processes load this module too.
 */

/** Node's codes for a server certificate its TLS check refused (node:tls, OpenSSL's X509_V_ERR_* names). */
const TLS_CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
]);

/** Where the README says how: quoted in every TLS message. */
const SEE = '(README "TLS to PostgreSQL")';

/** A PostgreSQL connection failure in words an operator can act on; other errors unchanged. */
export function explainPgConnectionFailure(err: unknown): unknown {
  const message = err instanceof Error ? err.message : String(err);
  // pg's own words for a server that asks for a password DATABASE_URL does not carry.
  if (/client password must be a string/.test(message)) {
    return new Error('the PostgreSQL server asks for a password and DATABASE_URL has none: postgres://user:password@host:5432/database (percent-encode special characters)', { cause: err });
  }
  const { code, syscall } = (err ?? {}) as { code?: unknown; syscall?: unknown };
  if (typeof code === 'string' && TLS_CERTIFICATE_CODES.has(code)) {
    return new Error(
      `the PostgreSQL server's TLS certificate was refused (${message}): name the certificate authority that issued it with sslrootcert=/path/to/ca.pem in DATABASE_URL, and connect to a host name the certificate is for ${SEE}`,
      { cause: err },
    );
  }
  // pg reads DATABASE_URL's sslrootcert, sslcert and sslkey files when it connects: the only files it opens.
  if (syscall === 'open' && typeof code === 'string') {
    return new Error(`a TLS file DATABASE_URL names (sslrootcert, sslcert or sslkey) cannot be read (${message}) ${SEE}`, { cause: err });
  }
  if (message === 'The server does not support SSL connections') {
    return new Error(
      `DATABASE_URL (sslmode, sslrootcert, sslcert or ssl) or PGSSLMODE asks for TLS, but the PostgreSQL server does not offer it: a unix socket (?host=/socket/dir) never does; enable ssl on the server, or connect without those parameters ${SEE}`,
      { cause: err },
    );
  }
  return err;
}
