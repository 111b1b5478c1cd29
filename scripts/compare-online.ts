// Online-stage comparison on Home Depot (issue 12): DPO vs GRPO vs GRPO + rule-aware dense rewards + guided
// replay, each for the same wall-time budget, from the same distilled student (a finished `minielm run`
// folder), for several seeds. Every run keeps the checkpoint with the best dev judged recall (as the pipeline
// does); the test split is read once per run, at the end: judged recall@10 with 10 rewrites, ROUGE-L against
// the reference rewrites (with the copy-the-query row), probe pass@1 / pass@10, the combined reward of greedy
// rewrites, and the time split of an iteration (generation / scoring / update) from the run's log.
//   node --import tsx scripts/compare-online.ts --base runs/homedepot-v4 --out runs/compare-online \
//     [--seconds 120] [--seeds 1,2,3] [--configs dpo,grpo,grpo-dense-replay] [--eval-queries 300]
// The budget is counted in this process's CPU time, --seconds x the engine's threads: the wall time of the
// run on an otherwise idle machine, and the same for every run when other jobs share the cores.
// Writes <out>/comparison.json and docs/results/online-comparison.md (with --doc PATH to change it).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tableWorld } from '../lib/pipeline.ts';
import { splitDev } from '../lib/eval/splits.ts';
import { Tokenizer } from '../lib/tokenizer/index.ts';
import { Model } from '../lib/model/model.ts';
import { Bm25Retriever, HOMEDEPOT_TRAIN_CSV } from '../lib/retrieval/index.ts';
import { EmbeddedJudge, generateProfiles } from '../lib/users/index.ts';
import { catalogWordConstraint, catalogWords, DEFAULT_HYGIENE, hygieneOptions } from '../lib/rewrite/hygiene.ts';
import { judgedRecall } from '../lib/eval/judged.ts';
import { copyQuery, modelRewriter } from '../lib/eval/rewriters.ts';
import { evaluateCopyQuery, evaluateOffline } from '../lib/eval/offline.ts';
import { evaluateProbes, HOMEDEPOT_PROBES } from '../lib/eval/probes.ts';
import { evaluatePolicy } from '../lib/rewrite/evaluate.ts';
import { trainOnline, type OnlineOptions } from '../lib/train/online.ts';
import { RuleRewards } from '../lib/rewards/rules.ts';
import { parseJsonLines } from '../lib/util/atomic.ts';
import type { RewardEnvironment } from '../lib/rewrite/environment.ts';
import type { GenerateOptions } from '../lib/model/generate.ts';
import { native } from '../lib/native.ts';

/** An AbortSignal that fires once this process has used `cpuSeconds` of CPU time from now. */
function cpuBudget(cpuSeconds: number): { signal: AbortSignal; stop: () => void } {
  const controller = new AbortController();
  const start = process.cpuUsage();
  const timer = setInterval(() => {
    const u = process.cpuUsage(start);
    if ((u.user + u.system) / 1e6 >= cpuSeconds) controller.abort();
  }, 250);
  return { signal: controller.signal, stop: () => clearInterval(timer) };
}

const { values } = parseArgs({ options: {
  base: { type: 'string', default: 'runs/homedepot-v4' }, out: { type: 'string', default: 'runs/compare-online' }, seconds: { type: 'string', default: '150' },
  seeds: { type: 'string', default: '1,2,3' }, configs: { type: 'string', default: 'dpo,grpo,grpo-dense-replay' }, 'eval-queries': { type: 'string', default: '300' },
  doc: { type: 'string', default: 'docs/results/online-comparison.md' },
} });
const seconds = Number(values.seconds);
const seeds = values.seeds!.split(',').map(Number);
const configs = values.configs!.split(',');
const evalQueries = Number(values['eval-queries']);

// The world and splits exactly as `minielm run` made them (seed 1), and its tokenizer and distilled student.
const world = await tableWorld({ path: HOMEDEPOT_TRAIN_CSV, seed: 1 });
const split = splitDev(world.test, { seed: 1 });
const tokenizer = await Tokenizer.load(join(values.base!, 'tokenizer'));
const init = join(values.base!, 'distilled', 'best');
const trainQueries = [...new Set(world.train.map((x) => x.query))];
const retriever = new Bm25Retriever();
await retriever.index([...world.products.values()]);
const constraint = await catalogWordConstraint(tokenizer, [...world.tokenizerTexts, ...trainQueries]);
const decoding: Partial<GenerateOptions> = hygieneOptions(DEFAULT_HYGIENE, constraint);
const devQueries = split.devQueries.slice(0, evalQueries);
const testQueries = split.testQueries.slice(0, evalQueries);
const rewriterOf = (m: Model) => modelRewriter(m, tokenizer, { n: 10, strategy: 'beam', decoding });
const judgedOn = (queries: readonly string[], r: Parameters<typeof judgedRecall>[1]) => judgedRecall(queries, r, retriever, world.judged, { n: 10, k: 10 });
const references = new Map<string, string[]>();
for (const p of world.train) references.set(p.query, [...(references.get(p.query) ?? []), p.rewrite]);
const rules = new RuleRewards({ vocabulary: catalogWords([...trainQueries, ...world.tokenizerTexts]) });

interface Row {
  config: string;
  seed: number;
  iterations: number;
  keptIteration: number;
  devRecall: number;
  testRecall: number;
  rougeL: number;
  probeAt1: number;
  probeAt10: number;
  reward: number;
  time: { generation: number; scoring: number; update: number };
}

const rows: Row[] = [];
await mkdir(values.out!, { recursive: true });
const copyRecall = (await judgedOn(testQueries, copyQuery)).recall;
const copyRouge = evaluateCopyQuery(split.test, { maxQueries: evalQueries }).rougeL;
const initModel = await Model.load(init);
const initRow = {
  testRecall: (await judgedOn(testQueries, rewriterOf(initModel))).recall,
  rougeL: (await evaluateOffline(initModel, tokenizer, split.test, { maxQueries: evalQueries, decoding })).rougeL,
  probes: await evaluateProbes(rewriterOf(initModel), HOMEDEPOT_PROBES, { n: 10 }),
};
await initModel.dispose();
console.log(`copy the query: judged recall ${copyRecall.toFixed(4)}, ROUGE-L ${copyRouge.toFixed(2)}; distilled student: ${initRow.testRecall.toFixed(4)}, ${initRow.rougeL.toFixed(2)}`);

for (const seed of seeds) {
  for (const config of configs) {
    const env: RewardEnvironment = { retriever, products: world.products, relevance: world.relevance, judge: new EmbeddedJudge({ seed }), profiles: generateProfiles(200, seed) };
    const out = join(values.out!, `${config}-s${seed}`);
    // 32 sampled rewrites per iteration for every algorithm: DPO 16 queries x 2, GRPO 4 queries x 8.
    const algo: Partial<OnlineOptions> = config === 'dpo' ? { algo: 'dpo', queriesPerIteration: 16 } : { algo: 'grpo', group: 8, queriesPerIteration: 4 };
    if (config === 'grpo-dense-replay') Object.assign(algo, { rules, guidance: { references } });
    const started = performance.now();
    const budget = cpuBudget(seconds * native.numThreads());
    const r = await trainOnline({
      out, init, reference: init, tokenizer, env, trainQueries, testQueries: devQueries, iterations: 100_000, evalEvery: 25,
      beta: 0.1, optimizer: { lr: 1e-4 }, seed, progress: false, decoding, klPenalty: 0.05, ...algo,
      signal: budget.signal,
      selectBy: async (policy) => (await judgedOn(devQueries, rewriterOf(policy))).recall,
    });
    budget.stop();
    const best = r.best ? await Model.load(r.best.dir) : r.policy;
    const { records } = parseJsonLines<Record<string, number>>(await readFile(join(out, 'log.jsonl'), 'utf8'));
    const steps = records.filter((x) => typeof x['time/update_s'] === 'number');
    const mean = (k: string) => steps.reduce((a, x) => a + x[k]!, 0) / Math.max(1, steps.length);
    const probes = await evaluateProbes(rewriterOf(best), HOMEDEPOT_PROBES, { n: 10 });
    const row: Row = {
      config, seed, iterations: r.iterations, keptIteration: r.best?.iteration ?? r.iterations, devRecall: r.best?.score ?? NaN,
      testRecall: (await judgedOn(testQueries, rewriterOf(best))).recall,
      rougeL: (await evaluateOffline(best, tokenizer, split.test, { maxQueries: evalQueries, decoding })).rougeL,
      probeAt1: probes.passAt1, probeAt10: probes.passAtN,
      reward: (await evaluatePolicy(best, tokenizer, env, testQueries, 16, 0, decoding)).reward,
      time: { generation: mean('time/generation_s'), scoring: mean('time/scoring_s'), update: mean('time/update_s') },
    };
    rows.push(row);
    console.log(`${config} seed ${seed}: ${r.iterations} iterations in ${((performance.now() - started) / 1000).toFixed(0)} s, kept ${row.keptIteration}; test judged recall ${row.testRecall.toFixed(4)}, ROUGE-L ${row.rougeL.toFixed(2)}, probes ${(100 * row.probeAt1).toFixed(1)} / ${(100 * row.probeAt10).toFixed(1)} %, reward ${row.reward.toFixed(4)}`);
    await r.policy.dispose();
    if (best !== r.policy) await best.dispose();
    await writeFile(join(values.out!, 'comparison.json'), `${JSON.stringify({ seconds, copyRecall, copyRouge, init: { ...initRow, probes: { passAt1: initRow.probes.passAt1, passAtN: initRow.probes.passAtN } }, rows }, null, 2)}\n`);
  }
}

const stat = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { m, sd };
};
const fmt = (xs: number[], scale = 1, digits = 3) => {
  const { m, sd } = stat(xs.map((x) => x * scale));
  return `${m.toFixed(digits)} ± ${sd.toFixed(digits)}`;
};
const lines = [
  '# Online stage: DPO vs GRPO vs GRPO + dense rewards + guided replay (Home Depot)',
  '',
  `Each run starts from the distilled student of \`${values.base}\` and trains for the same budget (${seconds} s on ${native.numThreads()} threads, counted as ${seconds * native.numThreads()} s of CPU time so that other jobs on the machine do not change it; dev evaluations included), 32 sampled rewrites per iteration (DPO: 16 queries x 2; GRPO: 4 queries x 8), keeping the checkpoint with the best dev judged recall; the test split (${testQueries.length} queries) is read once per run. Seeds ${seeds.join(', ')}; mean ± standard deviation over seeds. Command: \`node --import tsx scripts/compare-online.ts --base ${values.base} --out ${values.out} --seconds ${seconds} --seeds ${values.seeds}\`.`,
  '',
  `Copy the query: judged recall@10 ${copyRecall.toFixed(4)}, ROUGE-L ${copyRouge.toFixed(2)}, probes 0 / 0 %. Distilled student before the online stage: judged recall ${initRow.testRecall.toFixed(4)}, ROUGE-L ${initRow.rougeL.toFixed(2)}, probes ${(100 * initRow.probes.passAt1).toFixed(1)} / ${(100 * initRow.probes.passAtN).toFixed(1)} %.`,
  '',
  '| Online stage | iterations in budget | test judged recall@10 (10 rewrites) | ROUGE-L | probe pass@1 % | probe pass@10 % | combined reward (greedy) | time: generation / scoring / update (s per iteration) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const config of configs) {
  const rs = rows.filter((x) => x.config === config);
  if (!rs.length) continue;
  const t = { g: stat(rs.map((x) => x.time.generation)).m, s: stat(rs.map((x) => x.time.scoring)).m, u: stat(rs.map((x) => x.time.update)).m };
  const share = t.g / (t.g + t.s + t.u);
  lines.push(`| ${config} | ${fmt(rs.map((x) => x.iterations), 1, 0)} | ${fmt(rs.map((x) => x.testRecall), 1, 4)} | ${fmt(rs.map((x) => x.rougeL), 1, 2)} | ${fmt(rs.map((x) => x.probeAt1), 100, 1)} | ${fmt(rs.map((x) => x.probeAt10), 100, 1)} | ${fmt(rs.map((x) => x.reward), 1, 4)} | ${t.g.toFixed(2)} / ${t.s.toFixed(2)} / ${t.u.toFixed(2)} (generation ${(100 * share).toFixed(0)} %) |`);
}
lines.push('', 'Per run:', '', '| config | seed | iterations | kept at | dev recall | test recall | ROUGE-L | probes @1 / @10 % |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const x of rows) lines.push(`| ${x.config} | ${x.seed} | ${x.iterations} | ${x.keptIteration} | ${x.devRecall.toFixed(4)} | ${x.testRecall.toFixed(4)} | ${x.rougeL.toFixed(2)} | ${(100 * x.probeAt1).toFixed(1)} / ${(100 * x.probeAt10).toFixed(1)} |`);
await writeFile(values.doc!, `${lines.join('\n')}\n`);
console.log(lines.join('\n'));
