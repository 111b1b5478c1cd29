// Regression tests, through the addon, for the native bugs found while fuzzing the argument parsers
// (native/fuzz/, scripts/fuzz.js) and refactoring them into native/napi/parse.h. Each used to crash the
// process (or reinterpret one C++ object as another); each now ends in a coded error or a result.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MinielmError } from '../lib/index.ts';
import { native, type NativeModel } from '../lib/native.ts';

const CONFIG = { vocab_size: 3, n_ctx: 8, n_layer: 1, n_head: 1, n_embd: 4 };
const enc = new TextEncoder();

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.instance(err, MinielmError, `expected a MinielmError, got ${String(err)}`);
    return (err as MinielmError).code;
  }
  return 'resolved';
}

function constraint(tokens: string[], words: string[]) {
  const pack = (list: string[]) => {
    const bytes = enc.encode(list.join(''));
    const offsets = new Int32Array(list.length + 1);
    list.forEach((s, i) => (offsets[i + 1] = offsets[i] + enc.encode(s).length));
    return [bytes, offsets] as const;
  };
  const [tb, to] = pack(tokens);
  const [wb, wo] = pack(words);
  return native.createWordConstraint(tb, to, new Uint8Array(tokens.length), wb, wo);
}

test('a word constraint over a 300 KB token of spaces builds (it overflowed the stack: segfault)', async () => {
  // The trie walk recursed once per token byte, and the root accepts space after space.
  const wc = await constraint([' '.repeat(300_000), 'ab', 'a'.repeat(50_000)], ['ab', 'a'.repeat(50_000)]);
  assert.equal(Array.from(wc.allowed(0).tokens), [0, 1, 2]);
  assert.is(wc.step(0, 0), 0);
});

test('another class of native object passed as a model or a word constraint is refused (it was reinterpreted)', async () => {
  const wc = await constraint(['a', 'b', ' '], ['ab']);
  const model = await native.createModel(CONFIG, 0);
  const prompt = [Int32Array.from([1])];
  // A word constraint where a model goes: napi_unwrap gave its C++ object to the decoder as a model.
  assert.is(await codeOf(() => native.generate(wc as never, prompt, { maxNewTokens: 2 } as never)), 'MINIELM_INVALID_ARGUMENT');
  assert.is(await codeOf(() => native.distillStep(wc as never, model, { batch: 1, seq: 1, tokens: Int32Array.from([1]) }, {}, { lr: 1e-3 })), 'MINIELM_INVALID_ARGUMENT');
  assert.is(await codeOf(() => native.sequenceLogProbs(wc as never, { batch: 1, seq: 1, tokens: Int32Array.from([1]), targets: Int32Array.from([1]) })), 'MINIELM_INVALID_ARGUMENT');
  // A model dressed as a word constraint (its prototype swapped, so instanceof said yes).
  const fake = Object.create(Object.getPrototypeOf(wc)) as object;
  assert.is(await codeOf(() => native.generate(model, prompt, { maxNewTokens: 2, wordConstraint: fake } as never)), 'MINIELM_INVALID_ARGUMENT');
  const swapped = await native.createModel(CONFIG, 1);
  Object.setPrototypeOf(swapped, Object.getPrototypeOf(wc));
  assert.is(await codeOf(() => native.generate(model, prompt, { maxNewTokens: 2, wordConstraint: swapped } as never)), 'MINIELM_INVALID_ARGUMENT');
  // Plain objects, and the real thing still works.
  assert.is(await codeOf(() => native.generate({} as never, prompt, { maxNewTokens: 2 } as never)), 'MINIELM_INVALID_ARGUMENT');
  const out = await native.generate(model, prompt, { maxNewTokens: 2, wordConstraint: await constraint(['a', 'b', ' '], ['ab']) } as never);
  assert.is(out[0][0].tokens.length, 2);
});

test('sampling at a temperature near 0 or past float range keeps the word constraint (it drew masked tokens)', async () => {
  // 1 / T overflowed (or underflowed) float: NaN weights, and the draw fell through to a masked token.
  const tokens = Array.from({ length: 40 }, (_, i) => ['a', 'b', 'ab', ' a', ' b', 'ba', ' ', 'abc', 'c', 'aa'][i % 10]);
  const wc = await constraint(tokens, ['ab', 'ba']);
  const model = await native.createModel({ vocab_size: 40, n_ctx: 10, n_layer: 1, n_head: 2, n_embd: 8 }, 8);
  for (const temperature of [1e-304, 1e-40, 1e39, 1e300]) {
    for (const topK of [0, 10]) {
      const out = await native.generate(model, [Int32Array.from([1, 2])], { strategy: 'sample', numReturnSequences: 8, maxNewTokens: 7, temperature, topK, wordConstraint: wc } as never);
      for (const g of out[0]) {
        let state = 0;
        for (const t of g.tokens) {
          const next = wc.step(state, t);
          assert.ok(next >= 0, `temperature ${temperature}, topK ${topK}: token ${t} from state ${state} is outside the word constraint`);
          state = next;
        }
      }
    }
  }
});

test('a micro-batch or score step that is not an object is a coded error (it was an uncoded napi error)', async () => {
  const model = await native.createModel(CONFIG, 0);
  assert.is(await codeOf(() => model.train([[1 as never]], { lr: 1e-3 })), 'MINIELM_INVALID_ARGUMENT');
  assert.is(await codeOf(() => model.trainScore(['x' as never], { lr: 1e-3 })), 'MINIELM_INVALID_ARGUMENT');
});

test('a model seed that is negative, NaN or past 2^64 converts without undefined behaviour (new NativeModel)', () => {
  type Ctor = new (config: object, seed: number) => NativeModel;
  const NativeModelClass = (native as unknown as { NativeModel: Ctor }).NativeModel;
  const weights = (seed: number) => Array.from(new NativeModelClass(CONFIG, seed).readTensor('param', 'wte.weight'));
  for (const seed of [-1, Number.NaN, 1e30, 2 ** 64, Number.POSITIVE_INFINITY]) assert.is(weights(seed).length, 12, `seed ${seed}`);
  // Negative seeds count modulo 2^64 (what the x86-64 conversion always gave): -2^63 is 2^63.
  assert.equal(weights(-(2 ** 63)), weights(2 ** 63));
  assert.not.equal(weights(2 ** 63), weights(0));
  // NaN, infinities and |seed| >= 2^64 are seed 0.
  assert.equal(weights(Number.NaN), weights(0));
  assert.equal(weights(2 ** 64), weights(0));
});

test.run();
