// Rewrite hygiene in the native decoder: the vocabulary constraint is never violated and beam search under
// it is still exact (checked by enumerating every constrained sequence of a tiny model), no-repeat n-grams,
// repetition penalty and minimum length against a cache-free JS reference, and log-probs stay the raw
// model's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MinielmError } from '../lib/errors.ts';
import { type ModelConfig, type Model } from '../lib/model/model.ts';
import { generate, WordConstraint, type GenerateOptions } from '../lib/model/generate.ts';
import { spreadModel, lastLogits, logSoftmax } from './helpers/models.ts';

// A made-up byte-level vocabulary: tokens may start with a space, end mid-word, or be a lone space.
const EOS = 0;
const TOKENS = ['<eos>', '<sep>', ' a', ' b', 'a', 'b', 'c', ' ab', 'ca', ' ', 'x', ' c'];
const SPECIAL = [0, 1];
const WORDS = ['ab', 'ba', 'abc', 'c', 'cab'];
const CFG: ModelConfig = { vocab_size: TOKENS.length, n_ctx: 12, n_layer: 1, n_head: 2, n_embd: 16 };
const enc = new TextEncoder();

async function constraint(): Promise<WordConstraint> {
  return WordConstraint.create(TOKENS.map((t) => enc.encode(t)), SPECIAL, WORDS);
}

// The rule, written independently of the trie: every finished word is listed, the word being spelt is a
// prefix of a listed word, and the text may end only after a whole word.
function textOf(tokens: readonly number[]): string {
  return tokens.filter((t) => !SPECIAL.includes(t)).map((t) => TOKENS[t]).join('');
}
function prefixOk(text: string): boolean {
  const parts = text.split(' ');
  const last = parts.pop()!;
  return parts.every((p) => p === '' || WORDS.includes(p)) && WORDS.some((w) => w.startsWith(last));
}
function canEnd(text: string): boolean {
  const last = text.split(' ').pop()!;
  return prefixOk(text) && (last === '' || WORDS.includes(last));
}
function allowedNext(prefix: readonly number[]): number[] {
  const text = textOf(prefix);
  const out: number[] = [];
  for (let t = 0; t < TOKENS.length; t++) {
    if (t === EOS) {
      if (canEnd(text)) out.push(t);
    } else if (!SPECIAL.includes(t) && prefixOk(text + TOKENS[t])) out.push(t);
  }
  return out;
}

test('the trie agrees with the rule for every token from every reachable state', async () => {
  const c = await constraint();
  assert.is(c.words, WORDS.length);
  assert.is(c.vocabSize, TOKENS.length);
  // Breadth-first over token sequences up to length 4, following the trie's states.
  let frontier: { tokens: number[]; state: number }[] = [{ tokens: [], state: 0 }];
  let checked = 0;
  for (let depth = 0; depth < 4; depth++) {
    const next: typeof frontier = [];
    for (const f of frontier) {
      const want = allowedNext(f.tokens);
      const got = c.allowed(f.state);
      const gotAll = [...got.tokens, ...(got.canEnd ? [EOS] : [])].sort((a, b) => a - b);
      assert.equal(gotAll, want, `after "${textOf(f.tokens)}"`);
      for (const t of got.tokens) {
        const s = c.step(f.state, t);
        assert.ok(s >= 0);
        next.push({ tokens: [...f.tokens, t], state: s });
      }
      for (let t = 2; t < TOKENS.length; t++) if (!got.tokens.includes(t)) assert.is(c.step(f.state, t), -1);
      checked++;
    }
    frontier = next;
  }
  assert.ok(checked > 30, `${checked} states checked`);
});

test('sampled and greedy rewrites never leave the word list', async () => {
  const c = await constraint();
  for (const seed of [1, 2, 3]) {
    const m = await spreadModel(CFG, seed, 2);
    const out = await generate(m, [[1], [4, 1], [2, 3, 1]], { strategy: 'sample', numReturnSequences: 200, maxNewTokens: 6, eosTokenId: EOS, seed, temperature: 1.5, wordConstraint: c });
    const greedy = await generate(m, [[1], [4, 1]], { maxNewTokens: 6, eosTokenId: EOS, wordConstraint: c });
    for (const g of [...out.flat(), ...greedy.flat()]) {
      const text = textOf(g.tokens);
      if (g.finishReason === 'eos') assert.ok(canEnd(text), `"${text}" ended mid-word or on an unlisted word`);
      else assert.ok(prefixOk(text), `"${text}" is not a prefix of listed words`);
      assert.ok(g.tokens.every((t, i) => t !== 1 && (t !== EOS || i === g.tokens.length - 1)), 'no special token but the final EOS');
    }
    // Unconstrained, the same model does produce words outside the list (the test above could fail).
    const free = await generate(m, [[1]], { strategy: 'sample', numReturnSequences: 200, maxNewTokens: 6, eosTokenId: EOS, seed, temperature: 1.5 });
    assert.ok(free[0].some((g) => !prefixOk(textOf(g.tokens))), 'unconstrained sampling leaves the list');
  }
});

// Exhaustive reference: every constrained continuation up to maxNew tokens, each step's distribution
// renormalised over the allowed tokens (the processed log-probs beam search ranks by).
async function enumerate(m: Model, prompt: number[], maxNew: number): Promise<{ tokens: number[]; processed: number; raw: number }[]> {
  const out: { tokens: number[]; processed: number; raw: number }[] = [];
  const expand = async (prefix: number[], processed: number, raw: number): Promise<void> => {
    const logits = await lastLogits(m, [...prompt, ...prefix]);
    const rawLp = logSoftmax(logits);
    const allowed = allowedNext(prefix);
    const masked = Float64Array.from(logits, (v, t) => (allowed.includes(t) ? v : -Infinity));
    const lp = logSoftmax(masked);
    for (const t of allowed) {
      const tokens = [...prefix, t];
      if (t === EOS || tokens.length === maxNew) out.push({ tokens, processed: processed + lp[t], raw: raw + rawLp[t] });
      else await expand(tokens, processed + lp[t], raw + rawLp[t]);
    }
  };
  await expand([], 0, 0);
  return out;
}

test('beam search under the constraint is exact: its n-best equal the enumerated ranking', async () => {
  const c = await constraint();
  const m = await spreadModel(CFG, 4, 2);
  const prompt = [4, 1];
  const maxNew = 3;
  const all = await enumerate(m, prompt, maxNew);
  assert.ok(all.length > 20, `${all.length} constrained sequences`);
  for (const penalty of [1, 0]) {
    const ranked = all.map((s) => ({ ...s, score: s.processed / s.tokens.length ** penalty })).sort((a, b) => b.score - a.score);
    // Enough beams to keep every live prefix: exact.
    const [got] = await generate(m, [prompt], { strategy: 'beam', numBeams: 200, numReturnSequences: 8, maxNewTokens: maxNew, eosTokenId: EOS, lengthPenalty: penalty, wordConstraint: c });
    for (let k = 0; k < 8; k++) {
      assert.equal(got[k].tokens, ranked[k].tokens, `penalty ${penalty}, rank ${k}`);
      assert.ok(Math.abs(got[k].score - ranked[k].score) < 1e-4, `score ${got[k].score} vs ${ranked[k].score}`);
      // logprob stays the raw model's.
      assert.ok(Math.abs(got[k].logprob - ranked[k].raw) < 1e-4, `raw logprob ${got[k].logprob} vs ${ranked[k].raw}`);
    }
  }
});

// Greedy with each processor, against the same processor applied in JS to cache-free logits.
async function referenceGreedy(m: Model, prompt: number[], maxNew: number, process: (logits: Float64Array, gen: number[]) => void): Promise<number[]> {
  const gen: number[] = [];
  while (gen.length < maxNew) {
    const logits = await lastLogits(m, [...prompt, ...gen]);
    process(logits, gen);
    let best = 0;
    for (let t = 1; t < logits.length; t++) if (logits[t] > logits[best]) best = t;
    gen.push(best);
    if (best === EOS) break;
  }
  return gen;
}

test('no-repeat n-grams, repetition penalty and minimum length match a JS reference; logprob stays raw', async () => {
  const cfg: ModelConfig = { vocab_size: 16, n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 16 };
  // A model that loves to repeat: a strong self-loop through the embeddings.
  const m = await spreadModel(cfg, 9, 3);
  const prompt = [3, 5];
  const maxNew = 12;
  const plain = (await generate(m, [prompt], { maxNewTokens: maxNew, eosTokenId: EOS }))[0][0].tokens;
  const bigram = (g: readonly number[]): boolean => {
    const seen = new Set<string>();
    for (let i = 0; i + 1 < g.length; i++) {
      const k = `${g[i]},${g[i + 1]}`;
      if (seen.has(k)) return true;
      seen.add(k);
    }
    return false;
  };
  const cases: { opts: Partial<GenerateOptions>; ref: (l: Float64Array, gen: number[]) => void }[] = [
    {
      opts: { noRepeatNgramSize: 2 },
      ref: (l, gen) => {
        for (let i = 0; i + 1 < gen.length; i++) if (gen[i] === gen[gen.length - 1]) l[gen[i + 1]] = -Infinity;
      },
    },
    {
      opts: { repetitionPenalty: 1.8 },
      ref: (l, gen) => {
        for (const t of new Set(gen)) if (t !== EOS) l[t] = l[t] > 0 ? l[t] / 1.8 : l[t] * 1.8;
      },
    },
    {
      opts: { minNewTokens: 5 },
      ref: (l, gen) => {
        if (gen.length < 5) l[EOS] = -Infinity;
      },
    },
  ];
  for (const { opts, ref } of cases) {
    const [[g]] = await generate(m, [prompt], { maxNewTokens: maxNew, eosTokenId: EOS, tokenLogprobs: true, ...opts });
    const want = await referenceGreedy(m, prompt, maxNew, (l, gen) => {
      // The decoder processes float32 logits; compare in float32 so ties break the same way.
      for (let i = 0; i < l.length; i++) l[i] = Math.fround(l[i]);
      ref(l, gen);
    });
    assert.equal(g.tokens, want, JSON.stringify(opts));
    // The raw model's log-probs, whatever the processing.
    let raw = 0;
    for (let i = 0; i < g.tokens.length; i++) raw += logSoftmax(await lastLogits(m, [...prompt, ...g.tokens.slice(0, i)]))[g.tokens[i]];
    assert.ok(Math.abs(g.logprob - raw) < 1e-3, `${JSON.stringify(opts)}: logprob ${g.logprob} vs raw ${raw}`);
  }
  const [[nr]] = await generate(m, [prompt], { strategy: 'sample', numReturnSequences: 1, seed: 3, maxNewTokens: maxNew, eosTokenId: EOS, noRepeatNgramSize: 2 });
  assert.not.ok(bigram(nr.tokens), 'sampling respects no-repeat bigrams');
  assert.ok(bigram(plain), `the test model repeats bigrams without the ban: ${plain}`);
});

test('bad hygiene options are coded errors naming the option', async () => {
  const m = await spreadModel(CFG, 1);
  const c = await constraint();
  const bad = async (o: Partial<GenerateOptions>, re: RegExp): Promise<void> => {
    const err = await generate(m, [[1]], { maxNewTokens: 3, ...o }).catch((e: unknown) => e);
    assert.instance(err, MinielmError);
    assert.match((err as Error).message, re);
  };
  await bad({ noRepeatNgramSize: -1 }, /noRepeatNgramSize/);
  await bad({ repetitionPenalty: 0 }, /repetitionPenalty/);
  await bad({ minNewTokens: 4 }, /minNewTokens/);
  await bad({ wordConstraint: {} as never }, /wordConstraint/);
  const other = await spreadModel({ ...CFG, vocab_size: 20 }, 1);
  const err = await generate(other, [[1]], { maxNewTokens: 3, wordConstraint: c }).catch((e: unknown) => e);
  assert.match((err as Error).message, /built for 12 tokens.*has 20/);
  const ws = await WordConstraint.create([enc.encode('a')], [], ['two words']).catch((e: unknown) => e);
  assert.instance(ws, MinielmError);
});

test.run();
