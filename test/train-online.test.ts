// The online DPO loop on a tiny synthetic world: it produces preference pairs from rewarded rewrites, its
// updates move the policy and raise the chosen-vs-rejected margin on the pairs they learned from, it logs
// TRL-named metrics and periodic evaluations, and an interrupted run resumes to the same parameters as an
// uninterrupted one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSyntheticCatalog, buildQ2Q, syntheticIntentFilter } from '../lib/data/index.ts';
import { trainTokenizer, type Tokenizer } from '../lib/tokenizer/index.ts';
import { Bm25Retriever } from '../lib/retrieval/index.ts';
import { EmbeddedJudge, generateProfiles } from '../lib/users/index.ts';
import { SyntheticTruthScorer } from '../lib/rewards/index.ts';
import { trainSft } from '../lib/train/sft.ts';
import { trainOnline } from '../lib/train/online.ts';
import { evaluatePolicy } from '../lib/rewrite/evaluate.ts';
import { scoreRewrites, type RewardEnvironment } from '../lib/rewrite/environment.ts';
import { Model } from '../lib/model/model.ts';
import { grpoTokenLogProbs, preferenceLogProbs, type GrpoGroup, type PreferencePair } from '../lib/model/align.ts';
import { RuleRewards, RULE_NAMES } from '../lib/rewards/rules.ts';
import { catalogWords } from '../lib/rewrite/hygiene.ts';

let root = '';
let tokenizer: Tokenizer;
let env: RewardEnvironment;
let trainQueries: string[] = [];
let testQueries: string[] = [];
let student = '';
let references = new Map<string, string[]>();
let vocabulary = new Set<string>();

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-online-'));
  const catalog = generateSyntheticCatalog({ seed: 4, products: 300, queries: 300 });
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed: 4, filter: syntheticIntentFilter(catalog) });
  tokenizer = await trainTokenizer([...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)], { vocabSize: 400 });
  const retriever = new Bm25Retriever();
  await retriever.index([...catalog.products.values()]);
  env = { retriever, products: catalog.products, relevance: new SyntheticTruthScorer(catalog), judge: new EmbeddedJudge({ seed: 1 }), profiles: generateProfiles(20, 1) };
  trainQueries = [...new Set(q2q.train.map((p) => p.query))];
  testQueries = [...new Set(q2q.test.map((p) => p.query))].slice(0, 24);
  for (const p of q2q.train) references.set(p.query, [...(references.get(p.query) ?? []), p.rewrite]);
  vocabulary = catalogWords([...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)]);
  const sft = await trainSft({ out: join(root, 'sft'), train: q2q.train, test: q2q.test.slice(0, 32), tokenizer, config: { vocab_size: tokenizer.vocabSize, n_ctx: 40, n_layer: 1, n_head: 2, n_embd: 32 }, steps: 40, batchSize: 16, optimizer: { lr: 1e-2 }, evalEvery: 40, seed: 1, progress: false });
  assert.ok(sft.steps === 40);
  student = join(root, 'sft', 'best');
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('rewards: the original query rewritten as itself has diversity 0; relevance is measured against the original', async () => {
  const q = trainQueries[0];
  const [[same]] = await scoreRewrites(env, [q], [[q]]);
  assert.is(same.components.diversity, 0);
  assert.ok(same.reward >= 0 && same.reward <= 1);
  assert.is(same.relevance.length, same.productIds.length);
});

test('online DPO moves the policy, raises the margin, logs TRL names, evaluates, and resumes exactly', async () => {
  const common = { init: student, reference: student, tokenizer, env, trainQueries, testQueries, queriesPerIteration: 8, evalEvery: 2, beta: 0.1, optimizer: { lr: 1e-3 }, seed: 5, progress: false };
  const updatesSeen: { iteration: number; pairs: readonly PreferencePair[]; margin: number }[] = [];
  const straight = await trainOnline({ ...common, out: join(root, 'straight'), iterations: 4, onUpdate: (iteration, pairs, r) => updatesSeen.push({ iteration, pairs, margin: r['rewards/margins'] }) });
  assert.is(straight.iterations, 4);
  assert.ok(updatesSeen.length >= 2, `at least two DPO updates (got ${updatesSeen.length})`);
  assert.is(straight.updates, updatesSeen.length, 'one optimizer step per update');

  // The updates must move the policy: every parameter tensor changes, by far more than rounding.
  const init = await Model.load(student);
  let moved = 0, largest = 0;
  for (const { name } of straight.policy.tensors()) {
    const a = init.readTensor(name), b = straight.policy.readTensor(name);
    let diff = 0, scale = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(a[i]));
    }
    if (diff > 1e-4 * Math.max(scale, 1e-2)) moved++;
    largest = Math.max(largest, diff);
  }
  assert.is(moved, straight.policy.tensors().length, `every tensor moved (${moved} of ${straight.policy.tensors().length}; largest change ${largest})`);

  // ... and in the direction DPO asks for: on the pairs it learned from, the implicit-reward margin
  // beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))) is larger under the final policy than it
  // was when each pair was used (0 for the first update, where the policy still equals the reference).
  assert.ok(Math.abs(updatesSeen[0].margin) < 1e-6, `first update starts from the reference (margin ${updatesSeen[0].margin})`);
  const allPairs = updatesSeen.flatMap((u) => [...u.pairs]);
  const pol = await preferenceLogProbs(straight.policy, allPairs), ref = await preferenceLogProbs(init, allPairs);
  let offset = 0;
  for (const u of updatesSeen) {
    let after = 0;
    for (let i = 0; i < u.pairs.length; i++, offset++) after += common.beta * ((pol.chosen[offset] - ref.chosen[offset]) - (pol.rejected[offset] - ref.rejected[offset]));
    after /= u.pairs.length;
    assert.ok(after > u.margin + 0.02, `update at iteration ${u.iteration}: the mean margin on its pairs went ${u.margin} -> ${after}; DPO should have raised it`);
  }
  const log = (await readFile(join(root, 'straight', 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const updates = log.filter((l) => 'rewards/margins' in l);
  assert.ok(updates.length >= 1, 'at least one DPO update from non-tied pairs');
  for (const key of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'env/reward_chosen', 'env/reward_rejected', 'kl'])
    assert.ok(key in updates[0], `logged ${key}`);
  assert.ok(updates.every((u) => u['env/reward_chosen'] > u['env/reward_rejected']), 'chosen rewrites have the higher reward');
  assert.is(log.filter((l) => 'eval/reward' in l).length, 3, 'evaluations at iterations 0, 2 and 4');

  const controller = new AbortController();
  const part = await trainOnline({ ...common, out: join(root, 'resumed'), iterations: 4, signal: controller.signal, onEval: (it) => { if (it === 2) controller.abort(); } });
  assert.ok(part.aborted);
  assert.is(part.iterations, 2);
  const done = await trainOnline({ ...common, out: join(root, 'resumed'), iterations: 4 });
  assert.is(done.iterations, 4);
  for (const { name } of straight.policy.tensors()) {
    const a = straight.policy.readTensor(name), b = done.policy.readTensor(name);
    assert.ok(a.every((v, i) => Object.is(v, b[i])), `tensor ${name} differs after resume`);
  }
});

test('evaluatePolicy averages the rewards of greedy rewrites', async () => {
  const policy = await Model.load(student);
  const e = await evaluatePolicy(policy, tokenizer, env, testQueries.slice(0, 6));
  assert.is(e.queries, 6);
  assert.ok(e.reward >= 0 && e.reward <= 1);
  assert.ok(e.examples.length === 6);
});

test('the kept checkpoint is the one selectBy scores best; the KL penalty enters the reward and is logged', async () => {
  const common = { init: student, reference: student, tokenizer, env, trainQueries, testQueries, queriesPerIteration: 8, evalEvery: 2, beta: 0.1, optimizer: { lr: 1e-3 }, seed: 5, progress: false };
  // A score that peaks at the second evaluation (iteration 2): best/ must hold that policy, not the last.
  const scores = [0.1, 0.9, 0.3];
  let calls = 0;
  const snapshots: Float32Array[] = [];
  const out = join(root, 'select');
  const r = await trainOnline({ ...common, out, iterations: 4, klPenalty: 0.5, selectBy: async (policy) => {
    snapshots.push(policy.readTensor('wte.weight'));
    return scores[calls++];
  } });
  assert.is(calls, 3, 'scored at the start and at each evaluation');
  assert.equal(r.best, { score: 0.9, iteration: 2, dir: join(out, 'best') });
  const kept = await Model.load(join(out, 'best'));
  assert.equal(kept.readTensor('wte.weight'), snapshots[1]);
  assert.not.equal(kept.readTensor('wte.weight'), r.policy.readTensor('wte.weight'));
  const log = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(log.some((l) => l.kl_penalty === 0.5 && typeof l.kl === 'number'));
  assert.ok(log.some((l) => l['select/best'] === 0.9));
});

test('online GRPO: G samples per query, mu updates raise the log-prob of above-average samples, TRL names and time split logged, exact resume', async () => {
  const common = { init: student, reference: student, tokenizer, env, trainQueries, testQueries, queriesPerIteration: 4, evalEvery: 2, optimizer: { lr: 1e-3 }, seed: 7, progress: false, algo: 'grpo' as const, group: 4, mu: 2 };
  const seen: { iteration: number; inner: number; groups: readonly GrpoGroup[]; loss: number }[] = [];
  const init = await Model.load(student);
  const straight = await trainOnline({ ...common, out: join(root, 'grpo'), iterations: 4, onGrpoUpdate: (iteration, inner, groups, r) => seen.push({ iteration, inner, groups, loss: r.loss }) });
  assert.is(straight.iterations, 4);
  assert.is(seen.length, 8, 'mu = 2 updates per iteration');
  assert.is(straight.updates, 8);
  for (const u of seen) {
    assert.is(u.groups.length, 4);
    for (const g of u.groups) assert.is(g.completions.length, 4, 'G = 4 samples per query');
  }
  // The direction GRPO asks for, on the first batch: summed over its samples, the change in log-prob
  // weighted by the (group-centred) reward is positive after all updates.
  const first = seen[0].groups;
  const before = await grpoTokenLogProbs(init, first), after = await grpoTokenLogProbs(straight.policy, first);
  const T = before.length / (first.length * 4);
  let gain = 0;
  first.forEach((g, p) => {
    const rewards = Array.from(g.rewards);
    const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    rewards.forEach((r, j) => {
      let d = 0;
      for (let t = 0; t < T; t++) d += after[(p * 4 + j) * T + t] - before[(p * 4 + j) * T + t];
      gain += (r - mean) * d;
    });
  });
  assert.ok(gain > 0, `reward-weighted log-prob change on the first batch is ${gain}; GRPO should make it positive`);
  const log = (await readFile(join(root, 'grpo', 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const steps = log.filter((l) => 'reward_std' in l);
  assert.is(steps.length, 4);
  for (const key of ['loss', 'reward', 'reward_std', 'kl', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'completions/mean_length', 'grad_norm', 'time/generation_s', 'time/scoring_s', 'time/update_s'])
    assert.ok(steps.every((l) => typeof l[key] === 'number' && Number.isFinite(l[key])), `logged ${key}`);
  assert.ok(steps.some((l) => l.kl > 0), 'the KL to the reference is measured once the policy moved');
  assert.ok(steps.every((l) => 'clip_ratio/region_mean_mu1' in l), 'the second inner update logs its clip ratio');
  assert.equal((log[0] as unknown as { algo: string }).algo, 'grpo');

  const controller = new AbortController();
  const part = await trainOnline({ ...common, out: join(root, 'grpo-resumed'), iterations: 4, signal: controller.signal, onEval: (it) => { if (it === 2) controller.abort(); } });
  assert.is(part.iterations, 2);
  const done = await trainOnline({ ...common, out: join(root, 'grpo-resumed'), iterations: 4 });
  for (const { name } of straight.policy.tensors()) {
    const a = straight.policy.readTensor(name), b = done.policy.readTensor(name);
    assert.ok(a.every((v, i) => Object.is(v, b[i])), `tensor ${name} differs after resume`);
  }
});

test('GRPO with rule-aware dense rewards and adaptive guided replay: rules logged, failing groups get a reference rewrite, at most the share asked', async () => {
  const rules = new RuleRewards({ vocabulary });
  const seen: (readonly GrpoGroup[])[] = [];
  // minReward above any reward: every group fails, so the share cap decides (floor(0.5 * 4) = 2 per batch).
  const r = await trainOnline({
    init: student, reference: student, tokenizer, env, trainQueries, testQueries, queriesPerIteration: 4, evalEvery: 3, optimizer: { lr: 1e-3 }, seed: 9, progress: false,
    algo: 'grpo', group: 4, rules, guidance: { references, minReward: 2, maxShare: 0.5 }, out: join(root, 'grpo-rules'), iterations: 3,
    onGrpoUpdate: (_it, _inner, groups) => seen.push(groups),
  });
  assert.is(r.iterations, 3);
  const log = (await readFile(join(root, 'grpo-rules', 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const steps = log.filter((l) => 'reward_std' in l);
  for (const k of RULE_NAMES) assert.ok(steps.every((l) => l[`rewards/${k}`] >= 0 && l[`rewards/${k}`] <= 1), `logged rewards/${k}`);
  assert.ok(steps.every((l) => l['replay/groups'] === 2 && l['replay/share'] === 0.5), 'two of four groups guided per batch');
  // The guided groups hold a training reference rewrite of their query (its tokens + end of sequence).
  let guided = 0;
  for (const groups of seen) for (const g of groups) {
    const query = tokenizer.decode(Array.from(g.prompt).slice(0, -1));
    const refs = (references.get(query) ?? []).map((x) => [...tokenizer.encode(x), tokenizer.eosId].join(','));
    if (g.completions.some((c) => refs.includes(Array.from(c).join(',')))) guided++;
  }
  assert.ok(guided >= 2 * 3, `guided groups found in the updates: ${guided}`);
});

test.run();
