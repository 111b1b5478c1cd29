// Table 2's copy-the-query row against ROUGE-L worked out by hand, the report's verdict on it, and the
// judged-recall and probe sections.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateCopyQuery, type OfflineMetrics } from '../lib/eval/offline.ts';
import { COPY_ROW, copyVerdict, reportMarkdown, type PipelineReport } from '../lib/eval/report.ts';
import { judgedLabels, judgedRecall } from '../lib/eval/judged.ts';
import { evaluateProbes } from '../lib/eval/probes.ts';
import { copyQuery } from '../lib/eval/rewriters.ts';

const close = (a: number, b: number, msg = ''): void => assert.ok(Math.abs(a - b) < 1e-9, `${msg} expected ${b}, got ${a}`);

const pairs = [
  { query: 'gas mowe', rewrite: 'gas mower' },
  { query: 'gas mowe', rewrite: 'lawn mower gas' },
  { query: 'cordless drill', rewrite: 'drill cordless' },
  { query: 'cordless drill', rewrite: 'Cordless Drill!' },
  { query: 'ss dishwasher', rewrite: 'stainless steel dishwasher' },
];

test('copy the query: ExactMatch, ROUGE-L best over references, mean length, no cross-entropy', () => {
  // "gas mowe" vs "gas mower": LCS 1, P = R = 1/2, F = 0.5; vs "lawn mower gas": LCS 1, P = 1/2, R = 1/3, F = 0.4.
  // "cordless drill" vs "Cordless Drill!": identical after normalisation (F = 1, EM = 1).
  // "ss dishwasher" vs "stainless steel dishwasher": LCS 1, P = 1/2, R = 1/3, F = 0.4.
  const m = evaluateCopyQuery(pairs);
  assert.is(m.queries, 3);
  close(m.rougeL, (100 * (0.5 + 1 + 0.4)) / 3, 'ROUGE-L');
  close(m.exactMatch, 100 / 3, 'ExactMatch');
  close(m.meanLength, 2, 'length');
  assert.is(m.crossEntropy, null);
  assert.equal(m.examples[0], { query: 'gas mowe', rewrite: 'gas mowe' });
  const two = evaluateCopyQuery(pairs, { maxQueries: 2 });
  close(two.rougeL, 75);
  close(two.exactMatch, 50);
});

const metrics = (rougeL: number): OfflineMetrics => ({ exactMatch: 0, rougeL, crossEntropy: 4.2, meanLength: 3, queries: 3, examples: [] });
const base: PipelineReport = { title: 't', synthetic: false, command: 'c', seed: 1, stages: [], offline: [{ model: 'student (SFT)', metrics: metrics(70) }, { model: 'student (vanilla)', metrics: metrics(10) }], online: [], coverage: [], rewardCurve: [], probes: [], notes: [] };

test('the report says which models beat copying on ROUGE-L', () => {
  const report: PipelineReport = { ...base, offlineBaselines: [{ model: COPY_ROW, metrics: evaluateCopyQuery(pairs) }] };
  const v = copyVerdict(report)!;
  assert.equal(v.beat.map((x) => x.model), ['student (SFT)']);
  assert.equal(v.notBeat.map((x) => x.model), ['student (vanilla)']);
  const md = reportMarkdown(report);
  assert.match(md, /\| copy the query \| 33\.33 \| 63\.33 \| — \| — \| 2\.00 \|/);
  assert.match(md, /\| student \(SFT\) \| 0\.00 \| 70\.00 \| \+6\.67 \|/);
  assert.match(md, /Beat copying the query on ROUGE-L \(63\.33\): student \(SFT\)\. Did not: student \(vanilla\)\./);
});

test('a report without the baseline row renders as before', () => {
  assert.is(copyVerdict(base), null);
  const md = reportMarkdown(base);
  assert.match(md, /\| model \| ExactMatch % \| ROUGE-L \| cross-entropy \| mean length \(words\) \|/);
  assert.not.match(md, /Beat copying/);
  assert.not.match(md, /Judged recall/);
});

test('judged recall and probe sections render when present', async () => {
  const labels = judgedLabels([{ query: 'hose', productId: 'h1', gain: 1 }, { query: 'hose', productId: 'h2', gain: 1 }]);
  const retriever = { async index(): Promise<void> {}, async search(qs: readonly string[], k: number): Promise<string[][]> { return qs.map(() => ['h1', 'x'].slice(0, k)); } };
  const judged = await judgedRecall(['hose'], copyQuery, retriever, labels);
  const probes = await evaluateProbes(copyQuery);
  const md = reportMarkdown({ ...base, judged: [{ model: 'copy', split: 'dev', result: judged }], probeTable: [{ model: 'copy', result: probes }] });
  assert.match(md, /## Judged recall@10 with 10 rewrites \(human labels only\)/);
  assert.match(md, /\| copy \| dev \| 1 \| 0\.5000 \| 0\.5000 \| 1\.000 \| 0\.5000 \| 0\.0 \|/);
  assert.match(md, new RegExp(`\\| copy \\| ${probes.probes} \\| 0\\.0 \\| 0\\.0 \\|`));
});

test.run();
