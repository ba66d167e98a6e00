/**
 * The data commands: `clients list|disable|enable|delete`, `consents list|revoke` — through the
 * same operator actions as the admin pages (src/consent/operations.ts), so every path cascades
 * and audits the same way. "Active" is the one rule of src/consent/status.ts.
 */
import { consentStatus } from '../../consent/status.js';
import { EXIT_FAILURE, EXIT_OK, iso, requirePositional, table, UsageError, withContext, type Command } from '../command.js';

/** On stderr (stdout stays the list, or parseable JSON) when a list may have been cut at --limit. */
const moreMayExist = (limit: number) => `showing the first ${limit}; there may be more (--limit N to see more)`;

export const DATA_COMMANDS: Record<string, Command> = {
  'clients list': {
    summary: 'list registered clients with provenance and active consents',
    usage: 'mcp-consent-proxy clients list [--search <text>] [--disabled | --active] [--limit N] [--json]',
    options: { search: { type: 'string' }, disabled: { type: 'boolean' }, active: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values }, io) {
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
      return withContext(io, async (ctx) => {
        const rows = await ctx.stores.clientsMeta.list({ q: values.search as string | undefined, status: values.disabled ? 'disabled' : values.active ? 'active' : undefined, limit });
        const out = rows.map((r) => ({
          client_id: r.client_id,
          client_name: r.client_name,
          registered_at: iso(r.registered_at),
          ip: r.ip,
          redirect_hosts: r.redirect_hosts,
          last_used_at: iso(r.last_used_at),
          active_consents: r.active_consents,
          status: r.disabled_at ? 'disabled' : 'active',
          // How it came to exist (DESIGN §10): registered (DCR) or a metadata document P fetches (CIMD), with that document's state.
          kind: r.kind,
          ...(r.kind === 'cimd'
            ? { document_fetched_at: iso(r.cimd_fetched_at), document_expires_at: iso(r.cimd_expires_at), document_failures: r.cimd_failures, document_last_error: r.cimd_last_error }
            : {}),
        }));
        io.out(values.json ? JSON.stringify(out) : table(out, ['client_id', 'client_name', 'kind', 'registered_at', 'redirect_hosts', 'last_used_at', 'active_consents', 'status']));
        if (rows.length === limit) io.err(moreMayExist(limit));
        return EXIT_OK;
      });
    },
  },
  'clients disable': {
    summary: 'refuse a client from now on and revoke its consents, grants and tokens',
    usage: 'mcp-consent-proxy clients disable <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, async (ctx) => {
        const result = await ctx.ops.disableClient(clientId, { actor: 'cli' });
        if (!result) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`disabled ${clientId}; revoked ${result.revokedConsents} consent(s)`);
        return EXIT_OK;
      });
    },
  },
  'clients enable': {
    summary: 'allow a disabled client again (its revoked consents stay revoked)',
    usage: 'mcp-consent-proxy clients enable <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, async (ctx) => {
        if (!(await ctx.ops.enableClient(clientId, { actor: 'cli' }))) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`enabled ${clientId}`);
        return EXIT_OK;
      });
    },
  },
  'clients delete': {
    summary: 'delete a client registration, revoking its consents, grants and tokens',
    usage: 'mcp-consent-proxy clients delete <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, async (ctx) => {
        const result = await ctx.ops.deleteClient(clientId, { actor: 'cli' });
        if (!result) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`deleted ${clientId}; revoked ${result.revokedConsents} consent(s)`);
        return EXIT_OK;
      });
    },
  },
  'consents list': {
    summary: 'list consents (active ones unless --all)',
    usage: 'mcp-consent-proxy consents list [--subject <sub>] [--client <client_id>] [--all] [--limit N] [--json]',
    options: { subject: { type: 'string' }, client: { type: 'string' }, all: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values }, io) {
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
      return withContext(io, async (ctx) => {
        const rows = await ctx.stores.consents.list({ subject: values.subject as string | undefined, clientId: values.client as string | undefined, status: values.all ? undefined : 'active', limit });
        const now = Date.now();
        const out = rows.map((c) => ({
          id: c.id,
          subject: c.subject,
          client_id: c.client_id,
          redirect_uri: c.redirect_uri,
          scopes: c.scopes,
          granted_at: iso(c.granted_at),
          expires_at: iso(c.expires_at),
          status: consentStatus(c, now) === 'revoked' ? `revoked (${c.revoked_reason})` : consentStatus(c, now),
        }));
        io.out(values.json ? JSON.stringify(out) : table(out, ['id', 'subject', 'client_id', 'redirect_uri', 'scopes', 'granted_at', 'expires_at', 'status']));
        if (rows.length === limit) io.err(moreMayExist(limit));
        return EXIT_OK;
      });
    },
  },
  'consents revoke': {
    summary: 'revoke a consent: its grant, the tokens issued under it and the upstream token',
    usage: 'mcp-consent-proxy consents revoke <consent_id>',
    options: {},
    positionals: ['consent_id'],
    async run({ positionals }, io) {
      const raw = requirePositional(positionals, 'consent_id');
      const id = Number(raw);
      if (!Number.isInteger(id) || id < 1) throw new UsageError(`consent_id must be a number (got "${raw}")`);
      return withContext(io, async (ctx) => {
        const before = await ctx.stores.consents.byId(id);
        if (before?.revoked_at != null) {
          // Nothing to do, and nothing written: not a second "revoked" row for one revocation.
          io.out(`consent ${id} (${before.subject} → ${before.client_id}) was already revoked at ${iso(before.revoked_at)} (${before.revoked_reason})`);
          return EXIT_OK;
        }
        const consent = await ctx.ops.revokeConsent(id, { actor: 'cli' });
        if (!consent) {
          io.err(`no consent ${id}`);
          return EXIT_FAILURE;
        }
        io.out(`revoked consent ${id} (${consent.subject} → ${consent.client_id})`);
        return EXIT_OK;
      });
    },
  },
};
