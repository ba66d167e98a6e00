/**
 * Server-rendered pages (eta, auto-escaping on). Every page extends views/layout.eta, loads only
 * /assets/app.css from this origin and no script (CONS-17, strict CSP).
 */
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

export const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url));

export interface PageContext {
  /** base path for links ('' or '/base') */
  base: string;
  /** show the DEMO banner */
  demo: boolean;
  requestId?: string | undefined;
}

export function createViews(ctx: Omit<PageContext, 'requestId'>) {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: false });
  return {
    render(template: string, data: Record<string, unknown>, requestId?: string): string {
      return eta.render(template, { ...data, page: { ...ctx, requestId } });
    },
  };
}

export type Views = ReturnType<typeof createViews>;
