/**
 * The storage commands: `migrate` (create or upgrade the database), `audit verify` (the keyed
 * chain and the checkpoint file, DESIGN §9) and `audit export` (NDJSON for a SIEM) — on the
 * configured engine: SQLite at DATABASE_PATH, or PostgreSQL with DATABASE_URL (the one chain all
 * replicas append to).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { createAuditLogStore } from '../../store/audit-log.js';
import { describeVerification, verifyChain } from '../../audit/verify.js';
import { checkpointPath, parseCheckpointArg, replaceCheckpointFile } from '../../audit/checkpoint.js';
import { KeyRing } from '../../crypto/keys.js';
import type { AuditKey } from '../../store/audit-chain.js';
import { resolveSecretKey } from '../../crypto/secret-file.js';
import { EXIT_FAILURE, EXIT_OK, storageDb, UsageError, withContext, type Command } from '../command.js';

export const STORAGE_COMMANDS: Record<string, Command> = {
  migrate: {
    summary: 'create or upgrade the database, then exit',
    usage: 'mcp-consent-proxy migrate',
    options: {},
    async run(_args, io) {
      const { db } = await storageDb(io, false);
      try {
        io.out(db.applied.length ? `applied ${db.applied.join(', ')} to ${db.where}` : `${db.where} is up to date (migration ${db.current})`);
        return EXIT_OK;
      } finally {
        await db.sql.close();
      }
    },
  },
  'audit verify': {
    summary: 'verify the audit chain (keyed MACs) and the checkpoint file; exit 1 naming the problem if broken',
    usage: 'mcp-consent-proxy audit verify [--checkpoint <seq>:<mac>] [--json]',
    options: { json: { type: 'boolean' }, checkpoint: { type: 'string' } },
    async run({ values }, io) {
      const given = values.checkpoint === undefined ? undefined : parseCheckpointArg(values.checkpoint as string);
      if (values.checkpoint !== undefined && !given)
        throw new UsageError(`--checkpoint must be <seq>:<mac>, a row number and its 64-hex-digit MAC, as in an audit.checkpoint log line (got "${values.checkpoint as string}")`);
      const { config, db } = await storageDb(io, true);
      try {
        // DESIGN §9: keyed rows verify with SECRET_KEY's audit key, rows from before a rotation
        // with SECRET_KEY_PREVIOUS's. Without any, legacy rows still verify; keyed ones cannot.
        const secret = resolveSecretKey(config.secretKey, config.dataDir, { create: false })?.key;
        const keys = secret ? new KeyRing(secret, config.secretKeyPrevious).auditKeys() : [];
        const result = await verifyChain(createAuditLogStore(db.sql), { keys, checkpointFile: checkpointPath(config), checkpoint: given });
        if (values.json) {
          io.out(JSON.stringify(result));
        } else {
          if (result.ok) io.out(`audit log intact: ${result.rows} ${result.rows === 1 ? 'row' : 'rows'}, chain verified up to row ${result.tipSeq} (hash ${result.tipHash})`);
          else io.err(`audit log BROKEN${result.firstBadSeq === null ? '' : ` at row ${result.firstBadSeq}`}: ${result.problem}`);
          for (const line of describeVerification(result)) io.out(`  ${line}`);
          for (const warning of result.warnings) io.err(`warning: ${warning}`);
        }
        return result.ok ? EXIT_OK : EXIT_FAILURE;
      } finally {
        await db.sql.close();
      }
    },
  },
  'audit checkpoint-reset': {
    summary: 'start a new audit checkpoint file at the head of a chain that verifies, after a restore or a lost file (the old file is kept)',
    usage: 'mcp-consent-proxy audit checkpoint-reset',
    options: {},
    run: (_args, io) =>
      withContext(
        io,
        async (ctx) => {
          const path = checkpointPath(ctx.config);
          if (!path) throw new UsageError('an in-memory database (DATABASE_PATH=:memory:) keeps no checkpoint file');
          // The new file vouches for the chain as it stands: only one that verifies row by row gets it (DESIGN §9).
          const chain = await verifyChain(ctx.stores.auditLog, { keys: ctx.auditKeys });
          if (!chain.ok) {
            io.err(`audit log BROKEN${chain.firstBadSeq === null ? '' : ` at row ${chain.firstBadSeq}`}: ${chain.problem} — no new checkpoint file was started`);
            return EXIT_FAILURE;
          }
          // The reset is itself a row of the chain, which the new file records; the row holds what the
          // replaced file recorded, checked against the chain (rows it names that the chain lacks, a MAC
          // that differs) and the chain's head before it: MAC'd, so what a reset left behind stays on
          // record (review of 122688c: the row said only "ok" or "missing").
          const replaced = (await verifyChain(ctx.stores.auditLog, { keys: ctx.auditKeys, checkpointFile: path })).checkpointFile;
          const { status, seq, mac, key_id, ts } = replaced ?? { status: 'missing' };
          const before = { rows: chain.rows, seq: chain.tipSeq, hash: chain.tipHash };
          await ctx.audit.record({ event: 'cli.audit_checkpoint_reset', details: { replaced_file: { status, seq, mac, key_id, ts }, chain_before: before } });
          const head = await ctx.stores.auditLog.tip();
          if (!head) throw new Error('the audit log is empty after its own row was written');
          const kept = await replaceCheckpointFile(path, ctx.auditKeys[0] as AuditKey, head);
          if (status === 'beyond_chain' || status === 'differs')
            io.err(
              `the replaced file recorded row ${seq}, ${status === 'beyond_chain' ? `beyond the chain's last row, ${chain.tipSeq}` : 'which the chain holds with another MAC'}: recorded in the reset's row ${head.seq}`,
            );
          io.out(`audit checkpoint file ${path} now records row ${head.seq}${kept ? `; the file it replaces is kept as ${kept}` : ''}`);
          io.out('restart a server running on this database: until then it leaves the file as it found it');
          return EXIT_OK;
        },
        { checkpoint: false }, // the file is written here, not by a writer that would find it missing
      ),
  },
  'audit export': {
    summary: 'write the audit log as NDJSON (one row per line, hashes included)',
    usage: 'mcp-consent-proxy audit export [--since <ISO time>] [--output <file>]',
    options: { since: { type: 'string' }, output: { type: 'string', short: 'o' } },
    async run({ values }, io) {
      const since = values.since as string | undefined;
      // A year outside 0000–9999 (+275760-…) would compare as text with the stored ts and select every row.
      const sinceIso = since === undefined || Number.isNaN(Date.parse(since)) ? undefined : new Date(since).toISOString();
      if (since !== undefined && !/^\d{4}-/.test(sinceIso ?? ''))
        throw new UsageError(`--since must be an ISO 8601 time between the years 0000 and 9999, such as 2026-11-01T00:00:00Z (got "${since}")`);
      const { db } = await storageDb(io, true);
      let file: WriteStream | undefined;
      try {
        const store = createAuditLogStore(db.sql);
        const write = values.output ? ((file = createWriteStream(values.output as string)), (line: string) => file?.write(`${line}\n`)) : (line: string) => io.out(line);
        let n = 0;
        for await (const row of store.iterate(sinceIso ? { from: sinceIso } : {})) {
          write(JSON.stringify({ ...row, details: row.details ? JSON.parse(row.details) : null }));
          n += 1;
        }
        if (file) {
          await new Promise<void>((resolve, reject) => file?.end((err?: Error | null) => (err ? reject(err) : resolve())));
          io.err(`wrote ${n} rows to ${values.output as string}`);
        }
        return EXIT_OK;
      } finally {
        await db.sql.close();
      }
    },
  },
};
