// The run report: the paper's tables and figure as Markdown + JSON in one folder, and the reward curves of
// chosen and rejected rewrites over online training (moving average of 5) as an SVG image.
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { join } from 'node:path';
import type { CopyQueryMetrics, OfflineMetrics } from './offline.ts';
import type { JudgedRecallResult } from './judged.ts';
import type { ProbeSummary } from './probes.ts';
import type { CoverageResult } from './coverage.ts';
import type { PolicyEvaluation } from '../rewrite/evaluate.ts';

export interface PipelineReport {
  title: string;
  synthetic: boolean;
  command: string;
  seed: number;
  stages: { name: string; seconds: number }[];
  offline: { model: string; metrics: OfflineMetrics }[];
  online: { model: string; metrics: PolicyEvaluation }[];
  coverage: { model: string; result: CoverageResult }[];
  rewardCurve: { iteration: number; chosen: number; rejected: number }[];
  probes: { iteration: number; examples: { query: string; rewrite: string; reward: number }[] }[];
  notes: string[];
  // The fields below are optional so that reports written before them still load and re-render.
  /** Table 2 rows without a model: the copy-the-query baseline. */
  offlineBaselines?: { model: string; metrics: CopyQueryMetrics }[];
  /** Derived by writeReport from offline + offlineBaselines: which models beat copying on ROUGE-L. */
  copyVerdict?: CopyVerdict;
  /** Judged recall@k under human labels only (lib/eval/judged.ts), per rewriter and split. */
  judged?: { model: string; split?: string; result: JudgedRecallResult }[];
  /** Pass rates on the probe table (lib/eval/probes.ts), per rewriter. */
  probeTable?: { model: string; result: ProbeSummary }[];
}

export interface CopyVerdict {
  /** ROUGE-L (x100) of copying the query. */
  copyRougeL: number;
  /** Models with a higher ROUGE-L than copying, and their margin in ROUGE-L points. */
  beat: { model: string; margin: number }[];
  notBeat: { model: string; margin: number }[];
}

/** Which Table 2 models beat the copy-the-query row on ROUGE-L; null without that row. */
export function copyVerdict(r: Pick<PipelineReport, 'offline' | 'offlineBaselines'>): CopyVerdict | null {
  const copy = r.offlineBaselines?.find((b) => b.model === COPY_ROW) ?? r.offlineBaselines?.[0];
  if (!copy) return null;
  const rows = r.offline.map((o) => ({ model: o.model, margin: o.metrics.rougeL - copy.metrics.rougeL }));
  return { copyRougeL: copy.metrics.rougeL, beat: rows.filter((x) => x.margin > 0), notBeat: rows.filter((x) => !(x.margin > 0)) };
}

/** The name of the copy-the-query row in Table 2. */
export const COPY_ROW = 'copy the query';

export function movingAverage(values: readonly number[], window = 5): number[] {
  return values.map((_, i) => {
    const from = Math.max(0, i - window + 1);
    const part = values.slice(from, i + 1);
    return part.reduce((a, b) => a + b, 0) / part.length;
  });
}

export function rewardCurveSvg(curve: PipelineReport['rewardCurve'], window = 5): string {
  const W = 640, H = 360, L = 56, R = 16, T = 28, B = 44;
  if (curve.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">no online updates</text></svg>\n`;
  const xs = curve.map((p) => p.iteration);
  const chosen = movingAverage(curve.map((p) => p.chosen), window);
  const rejected = movingAverage(curve.map((p) => p.rejected), window);
  const all = [...chosen, ...rejected];
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const px = (x: number): number => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number): number => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
  const path = (ys: number[]): string => ys.map((y, i) => `${i ? 'L' : 'M'}${px(xs[i]).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Reward of chosen and rejected rewrites (moving average of ${window})</text>
${ticks.map((t) => `<line x1="${L}" x2="${W - R}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#ddd"/><text x="${L - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t.toFixed(3)}</text>`).join('\n')}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>
<text x="${L}" y="${H - B + 16}" text-anchor="middle">${x0}</text><text x="${W - R}" y="${H - B + 16}" text-anchor="middle">${x1}</text>
<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">online iteration</text>
<path d="${path(chosen)}" fill="none" stroke="#1b7837" stroke-width="2"/>
<path d="${path(rejected)}" fill="none" stroke="#b2182b" stroke-width="2"/>
<rect x="${W - R - 130}" y="${T + 6}" width="124" height="40" fill="white" stroke="#ccc"/>
<line x1="${W - R - 122}" x2="${W - R - 100}" y1="${T + 20}" y2="${T + 20}" stroke="#1b7837" stroke-width="2"/><text x="${W - R - 94}" y="${T + 24}">chosen</text>
<line x1="${W - R - 122}" x2="${W - R - 100}" y1="${T + 36}" y2="${T + 36}" stroke="#b2182b" stroke-width="2"/><text x="${W - R - 94}" y="${T + 40}">rejected</text>
</svg>
`;
}

const f = (v: number, d = 2): string => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const signed = (v: number): string => (Number.isFinite(v) ? `${v > 0 ? '+' : ''}${v.toFixed(2)}` : 'n/a');

export function reportMarkdown(r: PipelineReport): string {
  const lines: string[] = [`# ${r.title}`, ''];
  if (r.synthetic) lines.push('> SYNTHETIC DATA: invented products, queries and labels (the minielm synthetic catalog). Numbers here show the pipeline works; they say nothing about real users.', '');
  lines.push(`Command: \`${r.command}\` (seed ${r.seed})`, '', '## Stages', '', '| stage | seconds |', '| --- | ---: |');
  for (const s of r.stages) lines.push(`| ${s.name} | ${f(s.seconds, 1)} |`);
  lines.push('', '## Offline: rewrites on the Q2Q test split (Table 2)', '');
  const verdict = copyVerdict(r);
  if (verdict) {
    lines.push('| model | ExactMatch % | ROUGE-L | ROUGE-L vs copy | cross-entropy | mean length (words) |', '| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const b of r.offlineBaselines ?? []) lines.push(`| ${b.model} | ${f(b.metrics.exactMatch)} | ${f(b.metrics.rougeL)} | — | — | ${f(b.metrics.meanLength)} |`);
    for (const o of r.offline) lines.push(`| ${o.model} | ${f(o.metrics.exactMatch)} | ${f(o.metrics.rougeL)} | ${signed(o.metrics.rougeL - verdict.copyRougeL)} | ${f(o.metrics.crossEntropy, 3)} | ${f(o.metrics.meanLength)} |`);
    const names = (xs: CopyVerdict['beat']): string => xs.map((x) => x.model).join(', ') || 'none';
    lines.push('', `Beat copying the query on ROUGE-L (${f(verdict.copyRougeL)}): ${names(verdict.beat)}. Did not: ${names(verdict.notBeat)}.`);
  } else {
    lines.push('| model | ExactMatch % | ROUGE-L | cross-entropy | mean length (words) |', '| --- | ---: | ---: | ---: | ---: |');
    for (const o of r.offline) lines.push(`| ${o.model} | ${f(o.metrics.exactMatch)} | ${f(o.metrics.rougeL)} | ${f(o.metrics.crossEntropy, 3)} | ${f(o.metrics.meanLength)} |`);
  }
  lines.push('', '## Online: rewards of greedy rewrites on test queries (Table 3)', '', '| model | combined reward | relevance | diversity | click | add-to-cart | purchase |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const o of r.online) lines.push(`| ${o.model} | ${f(o.metrics.reward, 4)} | ${f(o.metrics.relevance, 4)} | ${f(o.metrics.diversity, 4)} | ${f(o.metrics.click, 4)} | ${f(o.metrics.addToCart, 4)} | ${f(o.metrics.purchase, 4)} |`);
  lines.push('', '## Coverage with 10 rewrites (Table 4)', '', '| model | relevant products / query | original query alone | distinct rewrites | gain vs first row |', '| --- | ---: | ---: | ---: | ---: |');
  const base = r.coverage[0]?.result.coverage ?? NaN;
  for (const c of r.coverage) lines.push(`| ${c.model} | ${f(c.result.coverage)} | ${f(c.result.originalOnly)} | ${f(c.result.distinctRewrites, 1)} | ${f((100 * (c.result.coverage - base)) / base, 1)} % |`);
  if (r.judged?.length) {
    const k = r.judged[0].result.k, n = r.judged[0].result.n;
    lines.push('', `## Judged recall@${k} with ${n} rewrites (human labels only)`, '', `Share of a query's human-judged relevant products reached by the union of the top ${k} of the query and of each rewrite; "same depth" is the query alone showing as many products as the union. See docs/evaluation.md.`, '',
      '| model | split | queries | with rewrites | query alone | ratio | query alone, same depth | distinct rewrites |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const j of r.judged) lines.push(`| ${j.model} | ${j.split ?? ''} | ${j.result.queries} | ${f(j.result.recall, 4)} | ${f(j.result.queryAlone, 4)} | ${j.result.ratio === null ? '—' : f(j.result.ratio, 3)} | ${f(j.result.queryAloneSameDepth, 4)} | ${f(j.result.distinctRewrites, 1)} |`);
  }
  if (r.probeTable?.length) {
    const n = r.probeTable[0].result.n;
    lines.push('', '## Probe table: misspelled, abbreviated and vague queries', '', `A probe passes when a rewrite holds every required word (stems); pass@${n}: one of the first ${n} rewrites does. Shares in %.`, '',
      `| model | probes | pass@1 | pass@${n} | misspelled pass@${n} | abbreviated pass@${n} | vague pass@${n} |`, '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    const pct = (v: number | undefined): string => (v === undefined ? '—' : f(100 * v, 1));
    for (const p of r.probeTable) {
      const b = p.result.byKind;
      lines.push(`| ${p.model} | ${p.result.probes} | ${pct(p.result.passAt1)} | ${pct(p.result.passAtN)} | ${pct(b.misspelled?.passAtN)} | ${pct(b.abbreviated?.passAtN)} | ${pct(b.vague?.passAtN)} |`);
    }
  }
  lines.push('', '## Reward curves (Figure 4)', '', '![chosen and rejected rewards](reward_curve.svg)', '', '## Probe queries over online training (Table 5)', '');
  const probes = r.probes.length ? r.probes[0].examples.map((e) => e.query) : [];
  if (probes.length) {
    lines.push(`| iteration | ${probes.map((q) => `"${q}"`).join(' | ')} |`, `| ---: | ${probes.map(() => '---').join(' | ')} |`);
    for (const p of r.probes) lines.push(`| ${p.iteration} | ${probes.map((q) => p.examples.find((e) => e.query === q)?.rewrite ?? '').map((t) => t.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  if (r.notes.length) lines.push('', '## Notes', '', ...r.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

export async function writeReport(dir: string, report: PipelineReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [join(dir, 'report.md'), join(dir, 'report.json'), join(dir, 'reward_curve.svg')];
  await writeFileAtomic(files[0], reportMarkdown(report));
  // The verdict is derived, so it is recomputed on every write and can never disagree with the rows.
  const verdict = copyVerdict(report);
  const json: PipelineReport = { ...report, copyVerdict: verdict ?? undefined };
  await writeFileAtomic(files[1], `${JSON.stringify(json, null, 2)}\n`);
  await writeFileAtomic(files[2], rewardCurveSvg(report.rewardCurve));
  return files;
}
