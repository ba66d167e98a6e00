/**
 * The soak's picture (test/artifacts/soak.svg), drawn by hand — no charting dependency: four
 * panels over the run's minutes (memory, descriptors, event-loop delay p99, database size), one
 * polyline per series, the warm-up shaded, nice round ticks.
 */
import type { Sample, Verdict } from './verdict.js';

export interface Series {
  label: string;
  color: string;
  values: number[];
  dashed?: boolean;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
}

const W = 920;
const H = 560;
const PANEL_W = 420;
const PANEL_H = 210;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round tick steps (1, 2, 5 × 10^k) covering [0, max]. */
function ticks(max: number, count = 4): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Number(v.toPrecision(6)));
  return out;
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1).replace(/\.0$/, '') : v.toFixed(2).replace(/\.?0+$/, ''));

function panel(p: Panel, x0: number, y0: number, minutes: number[], warmupMin: number): string {
  const left = x0 + 52;
  const top = y0 + 26;
  const width = PANEL_W - 62;
  const height = PANEL_H - 56;
  const tMax = Math.max(...minutes, 1e-9);
  const finite = p.series.flatMap((s) => s.values.filter(Number.isFinite));
  const yTicks = ticks(Math.max(...finite, 0) * 1.08);
  const yMax = yTicks.at(-1) as number;
  const x = (t: number) => left + (t / tMax) * width;
  const y = (v: number) => top + height - (v / yMax) * height;
  const parts: string[] = [`<text x="${x0 + 4}" y="${y0 + 16}" class="title">${esc(p.title)} <tspan class="unit">(${esc(p.unit)})</tspan></text>`];
  parts.push(`<rect x="${left}" y="${top}" width="${x(warmupMin) - left}" height="${height}" class="warmup"/>`);
  for (const v of yTicks) parts.push(`<line x1="${left}" x2="${left + width}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${left - 6}" y="${y(v) + 4}" class="tick" text-anchor="end">${fmt(v)}</text>`);
  for (const t of ticks(tMax, 5).filter((t) => t <= tMax * 1.0001)) parts.push(`<text x="${x(t)}" y="${top + height + 16}" class="tick" text-anchor="middle">${fmt(t)}</text>`);
  parts.push(`<text x="${left + width}" y="${top + height + 30}" class="tick" text-anchor="end">minutes</text>`);
  parts.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" class="frame"/>`);
  let lx = left + 8;
  p.series.forEach((s) => {
    const points = s.values.map((v, j) => (Number.isFinite(v) ? `${x(minutes[j] as number).toFixed(1)},${y(v).toFixed(1)}` : '')).filter(Boolean);
    parts.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(`<line x1="${lx}" x2="${lx + 16}" y1="${top + 10}" y2="${top + 10}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${lx + 20}" y="${top + 14}" class="legend">${esc(s.label)}</text>`);
    lx += 32 + s.label.length * 5.6;
  });
  return parts.join('\n');
}

export function renderSvg(title: string, subtitle: string, minutes: number[], warmupMin: number, panels: Panel[]): string {
  const body = panels.map((p, i) => panel(p, 20 + (i % 2) * (PANEL_W + 40), 60 + Math.floor(i / 2) * (PANEL_H + 40), minutes, warmupMin)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif">
<style>
.title { font-size: 14px; font-weight: 600; fill: #222 } .unit { font-weight: 400; fill: #666 }
.tick { font-size: 11px; fill: #555 } .legend { font-size: 11px; fill: #333 }
.grid { stroke: #e4e4e4 } .frame { fill: none; stroke: #999 } .warmup { fill: #f1f1f1 }
.head { font-size: 16px; font-weight: 600; fill: #111 } .sub { font-size: 12px; fill: #555 }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="26" class="head">${esc(title)}</text>
<text x="20" y="46" class="sub">${esc(subtitle)}</text>
${body}
</svg>
`;
}

/** The soak's four panels for `samples` (test/soak/run.ts). */
export function soakPicture(samples: Sample[], v: Verdict, o: { minutes: number; intervalS: number; machine: string; date: string }): string {
  const mbs = (key: 'rss' | 'heapAfterGc' | 'heapUsed' | 'dbBytes') => samples.map((s) => s[key] / 2 ** 20);
  const last = samples.at(-1);
  const pct = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(1)} %`;
  return renderSvg(
    `mcp-consent-proxy soak: ${o.minutes} min of mixed traffic, ${last?.gateway ?? 0} gateway calls, ${last?.authorizations ?? 0} authorizations`,
    `${o.date} · ${o.machine} · after the warm-up (shaded): RSS ${pct(v.rssGrowthPct)}, heap ${pct(v.heapGrowthPct)}, descriptors flat`,
    samples.map((s) => s.t / 60),
    v.warmupS / 60,
    [
      { title: 'Memory', unit: 'MB', series: [{ label: 'RSS', color: '#1f77b4', values: mbs('rss') }, { label: 'heap after GC', color: '#d62728', values: mbs('heapAfterGc') }, { label: 'heap as found', color: '#ff9896', values: mbs('heapUsed'), dashed: true }] },
      { title: 'Descriptors', unit: 'count', series: [{ label: 'file descriptors', color: '#2ca02c', values: samples.map((s) => s.fds) }, { label: 'sockets', color: '#9467bd', values: samples.map((s) => s.sockets) }] },
      {
        title: 'Event-loop delay',
        unit: `ms late, per ${o.intervalS} s window`,
        series: [
          { label: 'p99', color: '#8c564b', values: samples.map((s) => s.eldP99Ms) },
          { label: 'mean', color: '#c49c94', values: samples.map((s) => s.eldMeanMs), dashed: true },
          { label: 'p99, idle process', color: '#7f7f7f', values: samples.map((s) => s.eldFloorP99Ms), dashed: true },
        ],
      },
      { title: 'Database on disk', unit: 'MB', series: [{ label: 'db + WAL', color: '#17becf', values: mbs('dbBytes') }] },
    ],
  );
}
