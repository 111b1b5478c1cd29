// Batched decoding with the KV cache, checked against the full forward pass (no cache) and against
// exhaustive enumeration: cached logits, greedy, beam search (1 beam = greedy; exact n-best on a tiny
// vocabulary with EOS and length penalty), sampling frequencies vs the softmax, batching, seeds, errors.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, withNativeHandle, type ModelConfig } from '../lib/model/model.ts';
import { generate, type Generation } from '../lib/model/generate.ts';
import { native } from '../lib/native.ts';
import { spreadModel, lastLogits, logSoftmax } from './helpers/models.ts';

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

const MID: ModelConfig = { vocab_size: 40, n_ctx: 24, n_layer: 2, n_head: 2, n_embd: 32 };
const PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [9], [3, 30, 12]];

test('KV-cache logits equal the full forward recomputed at every step; greedy = its argmax', async () => {
  const m = await spreadModel(MID, 1);
  const V = MID.vocab_size;
  for (const opts of [{ strategy: 'greedy' as const }, { strategy: 'sample' as const, seed: 5, temperature: 1.3 }]) {
    const out = await generate(m, PROMPTS, { ...opts, maxNewTokens: 8, logits: true, tokenLogprobs: true });
    let worst = 0;
    for (let i = 0; i < PROMPTS.length; i++) {
      const g = out[i][0];
      assert.is(g.tokens.length, 8);
      assert.is(g.logits!.length, 8 * V);
      let sum = 0;
      for (let t = 0; t < g.tokens.length; t++) {
        const ref = await lastLogits(m, [...PROMPTS[i], ...g.tokens.slice(0, t)]);
        for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(ref[v] - g.logits![t * V + v]));
        if (opts.strategy === 'greedy') assert.is(g.tokens[t], argmax(ref), `prompt ${i} step ${t}: greedy token is the argmax`);
        const lp = logSoftmax(ref)[g.tokens[t]];
        assert.ok(Math.abs(lp - g.tokenLogprobs![t]) < 1e-4, `token log-prob ${g.tokenLogprobs![t]} vs ${lp}`);
        sum += g.tokenLogprobs![t];
      }
      assert.ok(Math.abs(sum - g.logprob) < 1e-4, 'logprob is the sum of the token log-probs');
    }
    assert.ok(worst < 1e-4, `${opts.strategy}: max |cached - full| = ${worst}`);
  }
});

test('beam search with one beam equals greedy', async () => {
  const m = await spreadModel(MID, 2);
  const greedy = await generate(m, PROMPTS, { maxNewTokens: 10, eosTokenId: 0 });
  const beam = await generate(m, PROMPTS, { strategy: 'beam', numBeams: 1, maxNewTokens: 10, eosTokenId: 0, lengthPenalty: 0.7 });
  for (let i = 0; i < PROMPTS.length; i++) {
    assert.equal(beam[i][0].tokens, greedy[i][0].tokens);
    assert.ok(Math.abs(beam[i][0].logprob - greedy[i][0].logprob) < 1e-5);
  }
});

test('beam search returns the truly best sequences of a tiny model (exhaustive, with EOS and length penalty)', async () => {
  const cfg: ModelConfig = { vocab_size: 5, n_ctx: 8, n_layer: 1, n_head: 1, n_embd: 8 };
  const m = await spreadModel(cfg, 3, 2);
  const prompt = [1, 3];
  const EOS = 0;
  const maxNew = 3;
  // Every sequence the decoder can produce: stops at EOS or after maxNew tokens.
  const seqs: { tokens: number[]; logprob: number }[] = [];
  const expand = async (prefix: number[], lp: number): Promise<void> => {
    const dist = logSoftmax(await lastLogits(m, [...prompt, ...prefix]));
    for (let v = 0; v < cfg.vocab_size; v++) {
      const tokens = [...prefix, v];
      const total = lp + dist[v];
      if (v === EOS || tokens.length === maxNew) seqs.push({ tokens, logprob: total });
      else await expand(tokens, total);
    }
  };
  await expand([], 0);
  assert.is(seqs.length, 1 + 4 + 16 * 5);
  for (const penalty of [1, 0, 2, -0.5]) {
    const ranked = seqs.map((s) => ({ ...s, score: s.logprob / s.tokens.length ** penalty })).sort((a, b) => b.score - a.score);
    // 80 beams keep every live prefix (at most 16 + their 64 continuations compete), so search is exact.
    const [got] = await generate(m, [prompt], { strategy: 'beam', numBeams: 80, numReturnSequences: 10, maxNewTokens: maxNew, eosTokenId: EOS, lengthPenalty: penalty });
    assert.is(got.length, 10);
    for (let k = 0; k < 10; k++) {
      assert.equal(got[k].tokens, ranked[k].tokens, `penalty ${penalty}, rank ${k}`);
      assert.ok(Math.abs(got[k].score - ranked[k].score) < 1e-4, `penalty ${penalty}, rank ${k}: score ${got[k].score} vs ${ranked[k].score}`);
      assert.is(got[k].finishReason, got[k].tokens[got[k].tokens.length - 1] === EOS ? 'eos' : 'length');
    }
    // A narrow beam is not exact, but what it returns is scored right and sorted.
    const [narrow] = await generate(m, [prompt], { strategy: 'beam', numBeams: 3, numReturnSequences: 3, maxNewTokens: maxNew, eosTokenId: EOS, lengthPenalty: penalty });
    for (let k = 0; k < narrow.length; k++) {
      const exact = ranked.find((s) => s.tokens.join() === narrow[k].tokens.join())!;
      assert.ok(Math.abs(exact.score - narrow[k].score) < 1e-4);
      if (k > 0) assert.ok(narrow[k].score <= narrow[k - 1].score);
    }
    assert.ok(narrow[0].score <= ranked[0].score + 1e-6);
  }
});

// Counts of the first sampled token over N draws against the expected probabilities: every token within
// 5 binomial standard deviations (plus one count for rounding), i.e. a false alarm rate below 1e-5 per token.
function checkFrequencies(gens: Generation[], expected: number[], what: string): void {
  const N = gens.length;
  const counts = new Array<number>(expected.length).fill(0);
  for (const g of gens) counts[g.tokens[0]]++;
  for (let v = 0; v < expected.length; v++) {
    const p = expected[v];
    const bound = 5 * Math.sqrt(N * p * (1 - p)) + 1;
    assert.ok(Math.abs(counts[v] - N * p) <= bound, `${what}: token ${v} drawn ${counts[v]} times, expected ${(N * p).toFixed(1)} +- ${bound.toFixed(1)}`);
  }
}

test('sampled token frequencies match the softmax (temperature, top-k, top-p) within 5 sigma over 20k draws', async () => {
  const cfg: ModelConfig = { vocab_size: 8, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };
  const m = await spreadModel(cfg, 4, 0.8);
  const prompt = [2, 5, 1];
  const logits = await lastLogits(m, prompt);
  const N = 20000;
  const T = 0.8;
  const p = Array.from(logSoftmax(logits, T), Math.exp);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  assert.ok(p[order[0]] < 0.8 && p[order[7]] > 0.001, `a usable test distribution: ${p.map((x) => x.toFixed(3))}`);
  const draw = async (extra: object): Promise<Generation[]> =>
    (await generate(m, [prompt], { strategy: 'sample', numReturnSequences: N, maxNewTokens: 1, seed: 11, temperature: T, ...extra }))[0];
  checkFrequencies(await draw({}), p, 'full softmax');
  // top-k = 3: the three most likely tokens, renormalised; the others never appear.
  const top3 = new Set(order.slice(0, 3));
  const z3 = order.slice(0, 3).reduce((a, i) => a + p[i], 0);
  checkFrequencies(await draw({ topK: 3 }), p.map((x, i) => (top3.has(i) ? x / z3 : 0)), 'top-k 3');
  // top-p: the smallest set of most likely tokens whose mass reaches top_p.
  const topP = (p[order[0]] + p[order[1]] + p[order[2]] * 0.5);
  const nucleus = new Set(order.slice(0, 3));
  const zn = order.slice(0, 3).reduce((a, i) => a + p[i], 0);
  checkFrequencies(await draw({ topP }), p.map((x, i) => (nucleus.has(i) ? x / zn : 0)), `top-p ${topP.toFixed(3)}`);
  // Both: top-k 2 first, then top-p within it keeps only the best token when it holds the mass asked for.
  const only = await draw({ topK: 2, topP: 0.5 * (p[order[0]] / (p[order[0]] + p[order[1]])) });
  assert.ok(only.every((g) => g.tokens[0] === order[0]), 'top-k then top-p keeps the single best token');
});

// More than 32 candidates take the O(V log m) heap selection instead of insertion: same sets, same order.
test('top-k / top-p over more than 32 candidates (heap selection) match the softmax; wide beams stay sorted and scored', async () => {
  const cfg: ModelConfig = { vocab_size: 96, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 16 };
  const m = await spreadModel(cfg, 7, 0.6);
  const prompt = [4, 9];
  const logits = await lastLogits(m, prompt);
  const p = Array.from(logSoftmax(logits), Math.exp);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  const N = 20000;
  const draw = async (extra: object): Promise<Generation[]> =>
    (await generate(m, [prompt], { strategy: 'sample', numReturnSequences: N, maxNewTokens: 1, seed: 3, ...extra }))[0];
  const k = 40;
  const topk = new Set(order.slice(0, k));
  const zk = order.slice(0, k).reduce((a, i) => a + p[i], 0);
  checkFrequencies(await draw({ topK: k }), p.map((x, i) => (topk.has(i) ? x / zk : 0)), 'top-k 40');
  // A top-p that needs more than 64 tokens makes the selection grow past its first 64 candidates.
  let mass = 0;
  let need = 0;
  while (need < 70) mass += p[order[need++]];
  const topP = mass - p[order[need - 1]] * 0.5;
  const nucleus = new Set(order.slice(0, need));
  checkFrequencies(await draw({ topP }), p.map((x, i) => (nucleus.has(i) ? x / mass : 0)), `top-p over ${need} tokens`);
  const [wide] = await generate(m, [prompt], { strategy: 'beam', numBeams: 40, numReturnSequences: 40, maxNewTokens: 3 });
  assert.is(wide.length, 40);
  for (let i = 1; i < wide.length; i++) assert.ok(wide[i].score <= wide[i - 1].score, 'beams sorted best first');
  // Step one of a 40-beam search keeps the 40 best first tokens, best first.
  const [first] = await generate(m, [prompt], { strategy: 'beam', numBeams: 40, numReturnSequences: 40, maxNewTokens: 1 });
  assert.equal(first.map((g) => g.tokens[0]), order.slice(0, 40));
});

test('a batch of prompts of different lengths gives the same results as one prompt at a time', async () => {
  const m = await spreadModel(MID, 6);
  const cases = [
    { strategy: 'greedy' as const, maxNewTokens: 9, eosTokenId: 3 },
    { strategy: 'beam' as const, numBeams: 4, numReturnSequences: 3, maxNewTokens: 9, eosTokenId: 3, lengthPenalty: 1.2, tokenLogprobs: true },
    { strategy: 'sample' as const, numReturnSequences: 4, maxNewTokens: 9, seed: 99, topK: 10, topP: 0.9, temperature: 1.5 },
  ];
  for (const opts of cases) {
    const batched = await generate(m, PROMPTS, opts);
    for (let i = 0; i < PROMPTS.length; i++) {
      const [alone] = await generate(m, [PROMPTS[i]], opts);
      assert.equal(batched[i], alone, `${opts.strategy}: prompt ${i} batched vs alone`);
    }
  }
});

test('same seed, same samples with 1 and 2 threads; another seed, other samples', async () => {
  const m = await spreadModel(MID, 7);
  const opts = { strategy: 'sample' as const, numReturnSequences: 6, maxNewTokens: 12, seed: 1234, temperature: 1.2, topP: 0.95 };
  const before = native.numThreads();
  try {
    native.setNumThreads(1);
    const one = await generate(m, PROMPTS, opts);
    native.setNumThreads(2);
    const two = await generate(m, PROMPTS, opts);
    assert.equal(two, one);
    const other = await generate(m, PROMPTS, { ...opts, seed: 1235 });
    assert.not.equal(other.map((l) => l.map((g) => g.tokens)), one.map((l) => l.map((g) => g.tokens)));
    // The samples of one prompt are distinct draws, not copies.
    assert.ok(new Set(one[0].map((g) => g.tokens.join())).size > 1);
  } finally {
    native.setNumThreads(before);
  }
});

test('bf16 weights: logits within 2 % of the logit range of fp32, greedy continuations mostly unchanged', async () => {
  const m = await spreadModel(MID, 8);
  const V = MID.vocab_size;
  const opts = { strategy: 'greedy' as const, maxNewTokens: 8, logits: true };
  const fp32 = await generate(m, PROMPTS, opts);
  const bf16 = await generate(m, PROMPTS, { ...opts, weights: 'bf16' });
  let agree = 0;
  for (let i = 0; i < PROMPTS.length; i++) {
    // Same first step input, so the first step's logits compare directly.
    const a = fp32[i][0].logits!.subarray(0, V);
    const b = bf16[i][0].logits!.subarray(0, V);
    const range = Math.max(...a) - Math.min(...a);
    let worst = 0;
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(a[v] - b[v]));
    assert.ok(worst > 0, 'bf16 really ran a different weight copy');
    assert.ok(worst < 0.02 * range, `prompt ${i}: max |bf16 - fp32| = ${worst}, logit range ${range}`);
    agree += fp32[i][0].tokens[0] === bf16[i][0].tokens[0] ? 1 : 0;
  }
  assert.ok(agree >= PROMPTS.length - 1, `first greedy tokens agree on ${agree} of ${PROMPTS.length} prompts`);
});

async function expectInvalid(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
    assert.unreachable('expected an error');
  } catch (err) {
    const e = err as { code?: string; message: string };
    assert.is(e.code, 'MINIELM_INVALID_ARGUMENT', e.message);
    assert.match(e.message, pattern);
  }
}

test('bad inputs give clear errors before any work starts', async () => {
  const m = await Model.create(MID, { seed: 1 });
  await expectInvalid(generate(m, [], { maxNewTokens: 2 }), /non-empty array of prompts/);
  await expectInvalid(generate(m, [[1], []], { maxNewTokens: 2 }), /prompt 1 is empty/);
  await expectInvalid(generate(m, [[1, 2], new Array(20).fill(1)], { maxNewTokens: 5 }), /prompt 1 has 20 tokens.*n_ctx is 24/);
  await expectInvalid(generate(m, [[1, 40]], { maxNewTokens: 2 }), /prompt 0 token 1 = 40/);
  await expectInvalid(generate(m, [[1, -1]], { maxNewTokens: 2 }), /prompt 0 token 1 = -1/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 0 }), /maxNewTokens/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, numBeams: 2, numReturnSequences: 3 }), /numReturnSequences \(3\) must be <= numBeams \(2\)/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, topP: 0 }), /topP must be in \(0, 1\]/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, topP: 1.5 }), /topP/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, temperature: 0 }), /temperature/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, temperature: NaN }), /temperature/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, eosTokenId: 40 }), /eosTokenId/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, strategy: 'greedy', numReturnSequences: 2 }), /greedy/);
  await expectInvalid(generate(m, [[1]], { maxNewTokens: 2, weights: 'fp16' as never }), /weights/);
  // The native layer checks again what a caller of the raw addon could pass.
  const raw = native.generate.bind(native);
  await withNativeHandle(m, async (h) => {
    await expectInvalid(Promise.resolve().then(() => raw(h, [Int32Array.from([])], { strategy: 'greedy', maxNewTokens: 2 })), /prompt 0 is empty/);
    await expectInvalid(Promise.resolve().then(() => raw(h, [Int32Array.from([1, 99])], { strategy: 'greedy', maxNewTokens: 2 })), /outside the vocabulary/);
    await expectInvalid(Promise.resolve().then(() => raw(h, [Int32Array.from([1])], { strategy: 'beam', numBeams: 2, numReturnSequences: 3, maxNewTokens: 2 })), /num_return_sequences/);
    await expectInvalid(Promise.resolve().then(() => raw(h, [Int32Array.from([1])], { strategy: 'sample', topP: 0, maxNewTokens: 2 })), /top_p/);
  });
  // The model is still usable afterwards.
  const [[g]] = await generate(m, [[1, 2]], { maxNewTokens: 3 });
  assert.is(g.tokens.length, 3);
});

// The whole suite again in a child process with the portable kernels (what machines without AVX-512 run).
if (process.env.MINIELM_DECODE_ISA !== 'generic') {
  test('the portable (non-AVX-512) kernels pass the same suite', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, MINIELM_DECODE_ISA: 'generic', FORCE_COLOR: '0' },
      encoding: 'utf8',
    });
    const out = `${run.stdout}${run.stderr}`;
    assert.is(run.status, 0, out.slice(-3000));
    assert.match(out, /Passed:\s+10/);
  });
} else {
  test('child run uses the portable kernels', () => {
    assert.is(native.decodeIsa(), 'generic');
  });
}

test.run();
