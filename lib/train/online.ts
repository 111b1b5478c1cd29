// MiniELM's online stage: the policy (the distilled student) rewrites sampled training queries twice,
// both rewrites are retrieved and rewarded in the environment, the better one becomes "chosen", and one
// DPO update follows, against the frozen distilled student as reference or reference-free (eq. 2).
// With algo 'grpo' it samples G rewrites per query instead and makes mu GRPO updates on them (group-normalised
// advantages, clipped ratio, k3 KL to the reference), logging TRL's GRPO names. Either way each log record
// carries the time split of its iteration (time/generation_s, time/scoring_s, time/update_s).
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Model, type OptimizerOptions } from '../model/model.ts';
import { generate, type GenerateOptions, type Generation } from '../model/generate.ts';
import { dpoStep, grpoStep, grpoTokenLogProbs, sequenceLogProbs, type DpoLossType, type DpoStepResult, type GrpoGroup, type GrpoOptions, type GrpoStepResult, type PreferencePair } from '../model/align.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { preferPair } from '../rewards/metrics.ts';
import { scoreRewrites, type RewardEnvironment, type ScoredRewrite } from '../rewrite/environment.ts';
import { promptIds, rewriteText } from '../rewrite/format.ts';
import { evaluatePolicy, type PolicyEvaluation } from '../rewrite/evaluate.ts';
import { JsonlLog, saveCheckpoint, loadTrainerState, hasCheckpoint, isNonFinite } from './run-state.ts';
import { recoverDir } from '../util/atomic.ts';
import { Progress } from './progress.ts';
import { xorshift32 } from './batches.ts';
import { invalidArgument } from '../errors.ts';
import { RULE_NAMES, HARD_RULES, type RuleRewards } from '../rewards/rules.ts';

export interface OnlineOptions {
  out: string;
  /** Starting policy folder (the distilled student); ignored when resuming from <out>/checkpoint. */
  init: string;
  /** Frozen reference folder (usually = init); null for the reference-free loss. */
  reference: string | null;
  tokenizer: Tokenizer;
  env: RewardEnvironment;
  trainQueries: readonly string[];
  testQueries: readonly string[];
  iterations?: number;
  queriesPerIteration?: number;
  evalEvery?: number;
  /** Test queries used by each periodic evaluation (default: all). */
  evalQueries?: number;
  beta?: number;
  lossType?: DpoLossType;
  optimizer?: OptimizerOptions;
  temperature?: number;
  topP?: number;
  maxNewTokens?: number;
  seed?: number;
  signal?: AbortSignal;
  progress?: boolean;
  /** Called after each periodic evaluation (the report collects reward curves and probe rewrites). */
  onEval?: (iteration: number, result: PolicyEvaluation) => void;
  /**
   * KL penalty in the reward: each sampled rewrite's reward becomes reward - klPenalty * (log pi(y) -
   * log ref(y)) before the pair is ranked, so drifting away from the reference to please a weak M1 costs
   * reward (needs a reference). Default 0.05.
   */
  klPenalty?: number;
  /** Decoding hygiene and vocabulary constraint for the sampled rewrites (lib/rewrite/hygiene.ts). */
  decoding?: Partial<GenerateOptions>;
  /**
   * The score that picks the kept checkpoint (higher is better), e.g. human-judged recall on the dev
   * split. Called at every evaluation (and at the start); the best policy is saved to <out>/best.
   */
  selectBy?: (policy: Model) => Promise<number>;
  /** Called after each DPO update with its iteration (1-based), the pairs it learned from and its metrics. */
  onUpdate?: (iteration: number, pairs: readonly PreferencePair[], result: DpoStepResult) => void;
  /**
   * The update: 'dpo' (the paper's: two samples per query, the better one chosen) or 'grpo' (`group`
   * samples per query, group-normalised advantages, clipped ratio; TaoSR-AGRL's base algorithm).
   */
  algo?: 'dpo' | 'grpo';
  /** GRPO: samples per query (G, default 8). */
  group?: number;
  /** GRPO: updates on each batch of samples (mu, default 1), the later ones against the sampling log-probs. */
  mu?: number;
  /** GRPO loss settings (lib/model/align.ts); its KL coefficient beta defaults to 0.04 with a reference, 0 without. */
  grpo?: Pick<GrpoOptions, 'epsilonLow' | 'epsilonHigh' | 'beta' | 'lossType' | 'scaleRewards'>;
  /**
   * GRPO: rule-aware dense rewards (lib/rewards/rules.ts) in place of the environment's combined reward;
   * each check's batch mean is logged as rewards/<name>.
   */
  rules?: RuleRewards;
  /**
   * GRPO: adaptive guided replay. A group whose samples all fail (reward below minReward, or, with rules,
   * fewer than minRuleShare of the hard rules met) gets a guidance member: a reference rewrite of its query
   * from `references` (the training Q2Q pairs) replaces its worst sample, is scored like the others and
   * enters the update with its log-probs under the policy. At most maxShare of a batch's groups (default
   * 0.25) are guided; logged as replay/groups and replay/share.
   */
  guidance?: { references: ReadonlyMap<string, readonly string[]>; minReward?: number; minRuleShare?: number; maxShare?: number };
  /** Called after each GRPO update with its iteration (1-based), inner update (0-based), groups and metrics. */
  onGrpoUpdate?: (iteration: number, inner: number, groups: readonly GrpoGroup[], result: GrpoStepResult) => void;
}

export interface OnlineResult {
  iterations: number;
  updates: number;
  aborted: boolean;
  stoppedOnNonFinite: boolean;
  lastEval?: PolicyEvaluation;
  policy: Model;
  /** With selectBy: the best score, its iteration and the folder holding that policy. */
  best?: { score: number; iteration: number; dir: string };
}

/** A seeded pick of `n` distinct indices out of `size` for iteration `it` (a pure function: exact resume). */
function pickQueries(size: number, n: number, seed: number, it: number): number[] {
  const next = xorshift32(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(it + 1, 0x85ebca6b));
  const chosen = new Set<number>();
  while (chosen.size < Math.min(n, size)) chosen.add(next() % size);
  return [...chosen];
}

export async function trainOnline(o: OnlineOptions): Promise<OnlineResult> {
  const iterations = o.iterations ?? 1000;
  const perIteration = o.queriesPerIteration ?? 16;
  const evalEvery = o.evalEvery ?? 50;
  const maxNewTokens = o.maxNewTokens ?? 16;
  const seed = o.seed ?? 1;
  const beta = o.beta ?? 0.1;
  const algo = o.algo ?? 'dpo';
  if (algo !== 'dpo' && algo !== 'grpo') throw invalidArgument(`algo must be 'dpo' or 'grpo', got ${String(algo)}`);
  const group = algo === 'grpo' ? (o.group ?? 8) : 2;
  const mu = algo === 'grpo' ? (o.mu ?? 1) : 1;
  if (!Number.isInteger(group) || group < 2 || group > 64) throw invalidArgument(`group must be an integer in [2, 64], got ${group}`);
  if (!Number.isInteger(mu) || mu < 1 || mu > 16) throw invalidArgument(`mu must be an integer in [1, 16], got ${mu}`);
  if (o.trainQueries.length < 1) throw invalidArgument('online training needs training queries');
  for (const [name, v] of Object.entries({ iterations, perIteration, evalEvery, maxNewTokens }))
    if (!Number.isInteger(v) || v < 1) throw invalidArgument(`${name} must be a positive integer, got ${v}`);
  await mkdir(o.out, { recursive: true });
  const ckptDir = join(o.out, 'checkpoint');
  const log = new JsonlLog(join(o.out, 'log.jsonl'));
  let policy: Model;
  let iteration = 0;
  let resumed: Awaited<ReturnType<typeof loadTrainerState>> | null = null;
  if (await hasCheckpoint(ckptDir)) {
    const state = await loadTrainerState(ckptDir);
    resumed = state;
    policy = await Model.load(ckptDir, { trainingState: true });
    iteration = Number(state.iteration ?? 0);
    await log.truncateAfter(iteration);
    await log.write({ event: 'resume', step: iteration });
  } else {
    policy = await Model.load(o.init);
    // A fresh start: drop whatever an attempt killed before its first checkpoint had logged.
    await log.truncateAfter(-1);
    await log.write({ event: 'start', step: 0, config: policy.config, reference: o.reference ?? 'none', algo, ...(algo === 'grpo' ? { num_generations: group, mu, ...o.grpo } : { beta, loss_type: o.lossType ?? 'sigmoid' }) });
  }
  if (policy.config.vocab_size !== o.tokenizer.vocabSize) throw invalidArgument(`the policy's vocab_size (${policy.config.vocab_size}) differs from the tokenizer's (${o.tokenizer.vocabSize})`);
  const reference = o.reference ? await Model.load(o.reference) : null;
  const optimizer: OptimizerOptions = { lr: 5e-5, warmupSteps: 0, schedule: 'constant', gradClip: 1, ...o.optimizer };
  const maxPrompt = policy.config.n_ctx - maxNewTokens;
  const progress = o.progress === false ? null : new Progress({ total: iterations, label: 'online' }, iteration);
  let aborted = false;
  let stoppedOnNonFinite = false;
  let lastEval: PolicyEvaluation | undefined;
  const evalSet = o.testQueries.slice(0, o.evalQueries ?? o.testQueries.length);
  const klPenalty = o.klPenalty ?? 0.05;
  if (!(klPenalty >= 0) || !Number.isFinite(klPenalty)) throw invalidArgument(`klPenalty must be a finite number >= 0, got ${klPenalty}`);
  const bestDir = join(o.out, 'best');
  let best: OnlineResult['best'];
  // The best score as of the checkpoint, not <out>/best's: a kill after a best save but before the
  // checkpoint leaves <out>/best ahead of it (on a fresh start, from an attempt that is replayed), and the
  // replay rewrites it. Older checkpoints without bestScore fall back to <out>/best.
  if (o.selectBy && resumed && typeof resumed.bestScore === 'number') {
    await recoverDir(bestDir);
    best = { score: resumed.bestScore, iteration: Number(resumed.bestIteration ?? 0), dir: bestDir };
  } else if (o.selectBy && resumed && (await hasCheckpoint(bestDir))) {
    const s = await loadTrainerState(bestDir);
    best = { score: Number(s.selectScore), iteration: Number(s.iteration ?? 0), dir: bestDir };
  }
  const save = (): Promise<void> => saveCheckpoint(ckptDir, policy, { step: iteration, iteration, ...(best ? { bestScore: best.score, bestIteration: best.iteration } : {}) }, (dir) => o.tokenizer.save(dir));
  // Scores the policy with selectBy and keeps it in <out>/best when it beats the best so far.
  const select = async (rec: Record<string, unknown>): Promise<void> => {
    if (!o.selectBy) return;
    const score = await o.selectBy(policy);
    rec['select/score'] = score;
    if (!best || score > best.score) {
      best = { score, iteration, dir: bestDir };
      await saveCheckpoint(bestDir, policy, { step: iteration, iteration, selectScore: score }, (dir) => o.tokenizer.save(dir));
    }
    rec['select/best'] = best.score;
  };

  // Adaptive guided replay (o.guidance): see OnlineOptions.guidance.
  const guide = async (groups: GrpoGroup[], queries: string[], scored: ScoredRewrite[][], rewardOf: (qi: number, rows: readonly ScoredRewrite[]) => { rewards: number[]; passed: number[] }, rec: Record<string, unknown>): Promise<void> => {
    const g = o.guidance!;
    const minReward = g.minReward ?? 0.2, minRuleShare = g.minRuleShare ?? 1, maxShare = g.maxShare ?? 0.25;
    const budget = Math.floor(maxShare * groups.length);
    const failing: number[] = [];
    scored.forEach((rows, i) => {
      const { rewards, passed } = rewardOf(i, rows);
      const allFail = rewards.every((r, j) => r < minReward || passed[j] / HARD_RULES.length < minRuleShare);
      if (allFail && (g.references.get(queries[i])?.length ?? 0) > 0) failing.push(i);
    });
    const chosen = failing.slice(0, budget);
    if (chosen.length) {
      // The reference rewrite of each guided query, picked by the iteration so that different ones come up.
      const refs = chosen.map((i) => {
        const list = g.references.get(queries[i])!;
        return list[(iteration + i) % list.length]!;
      });
      const refScored = await scoreRewrites(o.env, chosen.map((i) => queries[i]), refs.map((r) => [r]), iteration);
      chosen.forEach((i, c) => {
        const reward = rewardOf(i, refScored[c]!).rewards[0]!;
        const rewards = Array.from(groups[i]!.rewards);
        const worst = rewards.indexOf(Math.min(...rewards));
        const completions = [...groups[i]!.completions];
        completions[worst] = [...o.tokenizer.encode(refs[c]!), o.tokenizer.eosId];
        rewards[worst] = reward;
        groups[i] = { prompt: groups[i]!.prompt, completions, rewards };
      });
    }
    rec['replay/failing_groups'] = failing.length;
    rec['replay/groups'] = chosen.length;
    rec['replay/share'] = chosen.length / groups.length;
  };
  // One DPO update from the better of each query's two samples (none when every pair ties).
  const dpoUpdate = async (_queries: string[], prompts: number[][], gens: Generation[][], scored: ScoredRewrite[][]): Promise<{ rec: Record<string, unknown>; summary: string }> => {
    // Reference log-probs of every sample: the KL estimate, the KL penalty in the reward, and DPO's
    // reference terms (one reference forward pass serves all three).
    let refLogps: Float64Array | number[] | undefined;
    if (reference) {
      const seqs = gens.flatMap((pair, i) => pair.map((g) => [...prompts[i], ...g.tokens]));
      const masks = gens.flatMap((pair, i) => pair.map((g) => [...prompts[i].map(() => 0), ...g.tokens.map(() => 1)]));
      refLogps = await sequenceLogProbs(reference, seqs, masks);
      if (klPenalty > 0)
        scored.forEach((row, i) =>
          row.forEach((s, j) => {
            s.reward -= klPenalty * (gens[i][j].logprob - refLogps![2 * i + j]);
          }),
        );
    }
    const pairs: PreferencePair[] = [];
    const picked: { query: number; chosen: number; rejected: number }[] = [];
    let ties = 0;
    let chosenReward = 0, rejectedReward = 0;
    scored.forEach((row, i) => {
      const pref = preferPair(row[0].reward, row[1].reward);
      // Identical token sequences carry no preference either, whatever their rewards.
      if (pref.tie || gens[i][0].tokens.join(',') === gens[i][1].tokens.join(',')) {
        ties++;
        return;
      }
      pairs.push({ prompt: prompts[i], chosen: gens[i][pref.chosen].tokens, rejected: gens[i][pref.rejected].tokens });
      picked.push({ query: i, chosen: pref.chosen, rejected: pref.rejected });
      chosenReward += row[pref.chosen].reward;
      rejectedReward += row[pref.rejected].reward;
    });
    const rec: Record<string, unknown> = { step: iteration + 1, ties, pairs: pairs.length };
    let referenceLogps: { chosen: number[]; rejected: number[] } | undefined;
    if (refLogps) {
      const ref = refLogps;
      // KL(policy || reference) estimated on the policy's own samples: mean of log pi - log ref.
      const polLogps = gens.flatMap((pair) => pair.map((g) => g.logprob));
      rec.kl = polLogps.reduce((a, lp, i) => a + lp - ref[i], 0) / polLogps.length;
      rec.kl_penalty = klPenalty;
      referenceLogps = { chosen: picked.map((p) => ref[2 * p.query + p.chosen]), rejected: picked.map((p) => ref[2 * p.query + p.rejected]) };
    }
    if (pairs.length > 0) {
      const r = await dpoStep(policy, pairs, { beta, lossType: o.lossType ?? 'sigmoid', reference: referenceLogps }, optimizer);
      o.onUpdate?.(iteration + 1, pairs, r);
      Object.assign(rec, { loss: r.loss, 'rewards/chosen': r['rewards/chosen'], 'rewards/rejected': r['rewards/rejected'], 'rewards/margins': r['rewards/margins'], 'rewards/accuracies': r['rewards/accuracies'], 'logps/chosen': r['logps/chosen'], 'logps/rejected': r['logps/rejected'], grad_norm: r.gradNorm, learning_rate: r.lr });
      rec['env/reward_chosen'] = chosenReward / pairs.length;
      rec['env/reward_rejected'] = rejectedReward / pairs.length;
    }
    return { rec, summary: `pairs ${pairs.length}${rec['env/reward_chosen'] !== undefined ? ` | chosen ${(rec['env/reward_chosen'] as number).toFixed(3)} rejected ${(rec['env/reward_rejected'] as number).toFixed(3)}` : ''}` };
  };
  // mu GRPO updates on each query's G samples.
  const grpoUpdate = async (queries: string[], prompts: number[][], gens: Generation[][], scored: ScoredRewrite[][]): Promise<{ rec: Record<string, unknown>; summary: string }> => {
    const rec: Record<string, unknown> = { step: iteration + 1 };
    // Rewards: the environment's combined reward, or the rule-aware dense one.
    const rewardOf = (qi: number, rows: readonly ScoredRewrite[]): { rewards: number[]; passed: number[] } => {
      if (!o.rules) return { rewards: rows.map((x) => x.reward), passed: rows.map(() => HARD_RULES.length) };
      const r = rows.map((x) => o.rules!.score(queries[qi], x.rewrite, x.components));
      return { rewards: r.map((x) => x.reward), passed: r.map((x) => x.rulesPassed) };
    };
    // An empty completion still ends with the end-of-sequence token the policy chose.
    const groups: GrpoGroup[] = gens.map((samples, i) => ({
      prompt: prompts[i],
      completions: samples.map((g) => (g.tokens.length ? g.tokens : [o.tokenizer.eosId])),
      rewards: rewardOf(i, scored[i]).rewards,
    }));
    if (o.rules) {
      const sums = Object.fromEntries(RULE_NAMES.map((k) => [k, 0])) as Record<string, number>;
      let count = 0;
      scored.forEach((rows, i) => rows.forEach((x) => {
        const r = o.rules!.score(queries[i], x.rewrite, x.components);
        for (const k of RULE_NAMES) sums[k] += r.scores[k];
        count++;
      }));
      for (const k of RULE_NAMES) rec[`rewards/${k}`] = sums[k] / count;
    }
    if (o.guidance) await guide(groups, queries, scored, rewardOf, rec);
    const grpoBeta = o.grpo?.beta ?? (reference ? 0.04 : 0);
    const refLp = reference && grpoBeta > 0 ? await grpoTokenLogProbs(reference, groups) : undefined;
    const oldLp = mu > 1 ? await grpoTokenLogProbs(policy, groups) : undefined;
    for (let inner = 0; inner < mu; inner++) {
      const r = await grpoStep(policy, groups, { ...o.grpo, beta: grpoBeta, reference: refLp, oldLogps: inner === 0 ? undefined : oldLp }, optimizer);
      o.onGrpoUpdate?.(iteration + 1, inner, groups, r);
      if (inner === 0)
        Object.assign(rec, { loss: r.loss, reward: r.reward, reward_std: r.reward_std, kl: r.kl, 'clip_ratio/low_mean': r['clip_ratio/low_mean'], 'clip_ratio/high_mean': r['clip_ratio/high_mean'], 'clip_ratio/region_mean': r['clip_ratio/region_mean'], 'completions/mean_length': r['completions/mean_length'], frac_reward_zero_std: r.frac_reward_zero_std, grad_norm: r.gradNorm, learning_rate: r.lr });
      else Object.assign(rec, { [`clip_ratio/region_mean_mu${inner}`]: r['clip_ratio/region_mean'] });
    }
    return { rec, summary: `reward ${(rec.reward as number).toFixed(3)} ± ${(rec.reward_std as number).toFixed(3)}` };
  };

  if (iteration === 0) {
    lastEval = await evaluatePolicy(policy, o.tokenizer, o.env, evalSet, maxNewTokens, 0, o.decoding);
    const rec: Record<string, unknown> = { step: 0, ...evalRecord(lastEval) };
    await select(rec);
    await log.write(rec);
    o.onEval?.(0, lastEval);
  }
  while (iteration < iterations) {
    if (o.signal?.aborted) {
      aborted = true;
      break;
    }
    const queries = pickQueries(o.trainQueries.length, perIteration, seed, iteration).map((i) => o.trainQueries[i]);
    const prompts = queries.map((q) => promptIds(o.tokenizer, q, maxPrompt));
    const t0 = performance.now();
    const gens = await generate(policy, prompts, {
      ...o.decoding, strategy: 'sample', numReturnSequences: group, temperature: o.temperature ?? 1, topP: o.topP ?? 1, maxNewTokens,
      eosTokenId: o.tokenizer.eosId, seed: seed * 1_000_003 + iteration,
    });
    const t1 = performance.now();
    const rewrites = gens.map((pair) => pair.map((g) => rewriteText(o.tokenizer, g.tokens)));
    const scored = await scoreRewrites(o.env, queries, rewrites, iteration);
    const t2 = performance.now();
    const timing = (t3: number): Record<string, number> => ({ 'time/generation_s': (t1 - t0) / 1000, 'time/scoring_s': (t2 - t1) / 1000, 'time/update_s': (t3 - t2) / 1000 });
    let rec: Record<string, unknown>, summary: string;
    try {
      ({ rec, summary } = await (algo === 'grpo' ? grpoUpdate : dpoUpdate)(queries, prompts, gens, scored));
    } catch (err) {
      if (!isNonFinite(err)) throw err;
      stoppedOnNonFinite = true;
      await log.write({ event: 'non_finite', step: iteration + 1, message: (err as Error).message });
      progress?.finish(`stopped: ${(err as Error).message}. The last good checkpoint is in ${ckptDir}.`);
      break;
    }
    Object.assign(rec, timing(performance.now()));
    iteration++;
    if (iteration % evalEvery === 0 || iteration === iterations) {
      lastEval = await evaluatePolicy(policy, o.tokenizer, o.env, evalSet, maxNewTokens, 0, o.decoding);
      Object.assign(rec, evalRecord(lastEval));
      await select(rec);
      o.onEval?.(iteration, lastEval);
    }
    await log.write(rec);
    progress?.update(iteration, gens.flat().reduce((a, g) => a + g.tokens.length, 0), summary);
    if (iteration % evalEvery === 0 || iteration === iterations) await save();
  }
  if (aborted) {
    await save();
    await log.write({ event: 'interrupted', step: iteration });
    progress?.finish(`interrupted at iteration ${iteration}; checkpoint saved to ${ckptDir} (run the same command to resume)`);
  }
  return { iterations: iteration, updates: policy.step, aborted, stoppedOnNonFinite, lastEval, policy, ...(best ? { best } : {}) };
}

function evalRecord(e: PolicyEvaluation): Record<string, number> {
  return { 'eval/reward': e.reward, 'eval/relevance': e.relevance, 'eval/diversity': e.diversity, 'eval/click': e.click, 'eval/add_to_cart': e.addToCart, 'eval/purchase': e.purchase };
}
