/**
 * Admin: the overview and the audit log — recent security events, paging and filtering the log
 * (every page an index range scan, src/store/audit-log.ts), exporting it (NDJSON or CSV, the export
 * itself audited), and verifying the chain: the same verification as `audit verify` (DESIGN §9:
 * keyed MACs and the checkpoint file), in a worker thread that gets the derived audit keys only,
 * never SECRET_KEY.
 */
import type { Request, Response, Router } from 'express';
import { AUDIT_EVENTS } from '../audit/events.js';
import type { AuditRow } from '../store/audit-chain.js';
import { verifyChainInWorker, verifyTarget } from '../audit/verify-async.js';
import { describeVerification, type VerifyResult } from '../audit/verify.js';
import { checkpointPath } from '../audit/checkpoint.js';
import { csvLine, auditFilterFromQuery, type AuditQuery } from './audit-query.js';
import { adminOf } from './guard.js';
import { PAGE_SIZE, type AdminContext } from './context.js';

const SECURITY_OUTCOMES = ['deny', 'error'];
const EXPORT_COLUMNS: (keyof AuditRow)[] = ['seq', 'ts', 'event', 'outcome', 'reason', 'subject', 'client_id', 'ip', 'request_id', 'details', 'prev_hash', 'hash', 'key_id'];

type Verification = VerifyResult & { at: string; by: string; facts: string[] };

function presentRow(row: AuditRow) {
  let details: string | undefined;
  if (row.details) {
    try {
      details = JSON.stringify(JSON.parse(row.details), null, 2);
    } catch {
      details = row.details;
    }
  }
  return { ...row, time: row.ts.replace('T', ' ').replace('Z', ' UTC'), detailsPretty: details };
}

function withParam(query: URLSearchParams, name: string, value: string): string {
  const copy = new URLSearchParams(query);
  copy.delete('before');
  copy.delete('after');
  copy.set(name, value);
  return copy.toString();
}

/**
 * Writes one chunk of the export; when the socket's buffer is full, waits for 'drain' before the
 * next row is read (the log may hold millions of rows: never buffer it whole in memory). False once
 * the client has gone.
 */
async function send(res: Response, chunk: string): Promise<boolean> {
  if (res.destroyed || res.closed) return false;
  if (res.write(chunk)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
  return !res.destroyed && !res.closed;
}

/** The state both pages show: the last chain verification made from the console. */
interface AuditPagesState {
  lastVerification: Verification | undefined;
}

/** The overview: counts, the chain's head, the last verification, recent security events. */
function mountOverview(router: Router, ctx: AdminContext, state: AuditPagesState): void {
  const { stores } = ctx.deps;
  router.get('/', async (req, res) => {
    const since = new Date(Date.now() - 86_400_000).toISOString();
    const clients = await stores.clientsMeta.count();
    ctx.render(req, res, 'admin/overview', 'Overview', {
      counts: {
        clients: clients.total,
        disabled: clients.disabled,
        consents: await stores.consents.countActive(),
        tokens24h: await stores.auditLog.count({ event: 'token.issued', from: since }),
        denials24h: await stores.auditLog.count({ outcome: 'deny', from: since }),
      },
      tip: await stores.auditLog.tip(),
      verification: state.lastVerification,
      recent: (await stores.auditLog.listOutcomes(SECURITY_OUTCOMES, 12)).map(presentRow),
    });
  });
}

/** Verify the chain (POST): the same verification as `audit verify`, in a worker. */
function mountVerify(router: Router, ctx: AdminContext, state: AuditPagesState): void {
  const { deps, base, form, csrf } = ctx;
  const { audit, config, keys } = deps;
  router.post('/audit/verify', form, csrf, async (req, res, next) => {
    try {
      const admin = adminOf(res);
      await audit.flush();
      const { target, env } = verifyTarget(config);
      const result = await verifyChainInWorker(target, { keys: keys.auditKeys(), checkpointFile: checkpointPath(config) }, env);
      state.lastVerification = {
        ...result,
        at: new Date().toISOString(),
        by: admin.displayName ?? admin.subject,
        facts: [...describeVerification(result), ...result.warnings.map((w) => `warning: ${w}`)],
      };
      const checkpoint = result.checkpointFile?.status;
      const details = result.ok ? { rows: result.rows, tip_seq: result.tipSeq, keyed_from: result.keyedFrom, checkpoint } : { first_bad_seq: result.firstBadSeq, problem: result.problem, checkpoint };
      await audit.record({ event: 'admin.audit_verified', subject: admin.subject, reason: result.ok ? 'intact' : 'broken', details });
      res.redirect(303, `${base}/admin/audit?verified=1`);
    } catch (err) {
      next(err);
    }
  });
}

export function mountAudit(router: Router, ctx: AdminContext): void {
  const { deps, base, render } = ctx;
  const { stores, audit } = deps;
  const state: AuditPagesState = { lastVerification: undefined };
  mountOverview(router, ctx, state);
  router.get('/audit', async (req, res) => {
    const { filter, form: values } = auditFilterFromQuery(req.query as AuditQuery);
    const rows = await stores.auditLog.page(filter, PAGE_SIZE);
    const first = rows[0];
    const last = rows.at(-1);
    const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v) as [string, string][]);
    render(req, res, 'admin/audit', 'Audit log', {
      values,
      events: Object.keys(AUDIT_EVENTS),
      rows: rows.map(presentRow),
      newer: first && (filter.beforeSeq !== undefined || filter.afterSeq !== undefined) ? `${base}/admin/audit?${withParam(query, 'after', String(first.seq))}` : undefined,
      older: last && rows.length === PAGE_SIZE ? `${base}/admin/audit?${withParam(query, 'before', String(last.seq))}` : undefined,
      exportNdjson: `${base}/admin/audit/export?${withParam(query, 'format', 'ndjson')}`,
      exportCsv: `${base}/admin/audit/export?${withParam(query, 'format', 'csv')}`,
      verification: state.lastVerification,
      tip: await stores.auditLog.tip(),
    });
  });

  router.get('/audit/export', ctx.notCrossSite, async (req: Request, res) => {
    const { filter } = auditFilterFromQuery(req.query as AuditQuery);
    delete filter.beforeSeq;
    delete filter.afterSeq;
    const csv = req.query.format === 'csv';
    await audit.record({ event: 'admin.audit_exported', subject: adminOf(res).subject, details: { format: csv ? 'csv' : 'ndjson', filter } });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="audit-${stamp}.${csv ? 'csv' : 'ndjson'}"`);
    if (csv) res.write(`${csvLine(EXPORT_COLUMNS)}\n`);
    for await (const row of stores.auditLog.iterate(filter)) {
      const line = csv ? `${csvLine(EXPORT_COLUMNS.map((c) => row[c]))}\n` : `${JSON.stringify({ ...row, details: row.details ? JSON.parse(row.details) : null })}\n`;
      if (!(await send(res, line))) return; // the client went away: stop reading the log
    }
    res.end();
  });

  mountVerify(router, ctx, state);
}
