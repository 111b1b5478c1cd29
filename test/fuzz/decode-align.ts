// Properties over decoding and alignment: generate (every strategy and option), WordConstraint.create,
// distillStep, dpoStep, sequenceLogProbs and preferenceLogProbs, on tiny models.
import fc from 'fast-check';
import { Model } from '../../lib/model/model.ts';
import { generate, WordConstraint } from '../../lib/model/generate.ts';
import { distillStep, dpoStep, preferenceLogProbs, sequenceLogProbs } from '../../lib/model/align.ts';
import { edgeNumber, edgeString, hostileValue, mostly, options, tokenIds } from './arbitraries.ts';
import { sharedModel, TINY } from './fixtures.ts';
import { runProperty, type FuzzProperty } from './harness.ts';
import { batchArb, optimizerArb, restoring } from './model.ts';

const V = TINY.vocab_size;

/** One byte string per token of the tiny vocabulary: the letters a..p. */
function tinyTokenBytes(vocab = V): Uint8Array[] {
  return Array.from({ length: vocab }, (_, i) => Uint8Array.of(97 + (i % 26)));
}

let constraints: Promise<{ fits: WordConstraint; other: WordConstraint }> | null = null;
function wordConstraints(): Promise<{ fits: WordConstraint; other: WordConstraint }> {
  constraints ??= (async () => ({
    fits: await WordConstraint.create(tinyTokenBytes(), [0], ['abc', 'de', 'fgh', 'a']),
    other: await WordConstraint.create(tinyTokenBytes(V + 3), [0], ['abc']),
  }))();
  return constraints;
}

async function validGenerate(m: Model): Promise<void> {
  const out = await generate(m, [[1, 2]], { maxNewTokens: 3 });
  if (out.length !== 1 || out[0].length !== 1 || out[0][0].tokens.length === 0) throw new Error('a valid greedy decode after the property returned nothing');
}

export const fuzzGenerate: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('generate');
  const disposed = await Model.create(TINY, { seed: 2 });
  await disposed.dispose();
  const { fits, other } = await wordConstraints();
  const aborted = AbortSignal.abort();
  const abortSoon = (): AbortSignal => AbortSignal.timeout(0);
  const common = {
    maxNewTokens: fc.integer({ min: 1, max: 4 }),
    eosTokenId: fc.integer({ min: 0, max: V - 1 }),
    tokenLogprobs: fc.boolean(),
    weights: fc.constantFrom('fp32', 'bf16'),
    signal: fc.constantFrom('aborted', 'soon', 'live').map((s) => (s === 'aborted' ? aborted : s === 'soon' ? abortSoon() : new AbortController().signal)),
    noRepeatNgramSize: fc.integer({ min: 0, max: TINY.n_ctx }),
    repetitionPenalty: fc.oneof(fc.double({ min: 0.1, max: 3, noNaN: true }), fc.constantFrom(1e-30, 1e30)),
    minNewTokens: fc.integer({ min: 0, max: 2 }),
    wordConstraint: fc.constantFrom(fits, other),
  };
  const sampling = {
    temperature: fc.oneof(fc.double({ min: 0.05, max: 5, noNaN: true }), fc.constantFrom(1e-30, 1e30)),
    topK: fc.integer({ min: 0, max: V + 2 }),
    topP: fc.oneof(fc.double({ min: 1e-6, max: 1, noNaN: true }), fc.constantFrom(1e-30, 1)),
    seed: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  };
  const generateOptions = fc.oneof(
    options({ ...common, strategy: fc.constant('greedy'), logits: fc.boolean() }),
    options({ ...common, ...sampling, strategy: fc.constant('sample'), numReturnSequences: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(4096)), logits: fc.boolean() }),
    fc.integer({ min: 1, max: 6 }).chain((beams) => options({
      ...common,
      strategy: fc.constant('beam'),
      numBeams: fc.constant(beams),
      numReturnSequences: fc.integer({ min: 1, max: beams }),
      lengthPenalty: fc.double({ min: -3, max: 3, noNaN: true }),
    })),
    options({ ...common, strategy: fc.constant('beam'), numBeams: fc.constant(1024), numReturnSequences: fc.constantFrom(1, 1024) }),
  );
  const prompts = fc.oneof({ arbitrary: fc.array(tokenIds(V, 4), { minLength: 1, maxLength: 3 }), weight: 10 }, { arbitrary: hostileValue, weight: 1 });
  const model = fc.oneof({ arbitrary: fc.constant(m as unknown), weight: 30 }, { arbitrary: fc.constant(disposed as unknown), weight: 1 }, { arbitrary: hostileValue, weight: 1 });
  return runProperty({
    entry: 'generate',
    arbitrary: fc.tuple(model, prompts, generateOptions),
    call: ([model, p, opts]) => generate(model as Model, p as number[][], opts as never),
    check: (out) => (Array.isArray(out) ? undefined : 'generate resolved to something else than an array'),
    sanity: () => validGenerate(m),
  }, { runs, ...o });
};

export const fuzzWordConstraint: FuzzProperty = async (runs, o) => {
  const tokenBytes = fc.oneof(
    { arbitrary: fc.array(fc.uint8Array({ maxLength: 4 }), { minLength: 1, maxLength: 24 }), weight: 8 },
    { arbitrary: fc.array(mostly(fc.uint8Array({ maxLength: 3 })), { maxLength: 6 }), weight: 2 },
    { arbitrary: hostileValue, weight: 1 },
  );
  const special = fc.oneof({ arbitrary: fc.array(fc.oneof(fc.integer({ min: -1, max: 25 }), edgeNumber), { maxLength: 3 }), weight: 8 }, { arbitrary: hostileValue, weight: 1 });
  const words = fc.oneof({ arbitrary: fc.array(fc.oneof(fc.stringMatching(/^[a-z]{0,5}$/), edgeString), { maxLength: 5 }), weight: 8 }, { arbitrary: hostileValue, weight: 1 });
  return runProperty({
    entry: 'WordConstraint',
    arbitrary: fc.tuple(tokenBytes, special, words, fc.array(fc.tuple(fc.oneof(fc.integer({ min: -2, max: 30 }), hostileValue), fc.oneof(fc.integer({ min: -2, max: 30 }), hostileValue)), { maxLength: 4 })),
    call: async ([bytes, sp, w, steps]) => {
      const c = await WordConstraint.create(bytes as never, sp as never, w as never);
      for (const [state, token] of steps) {
        try {
          c.allowed(state as number);
          c.step(state as number, token as number);
        } catch (err) {
          if (!(err instanceof Error && (err as { code?: string }).code === 'MINIELM_INVALID_ARGUMENT')) throw err;
        }
      }
      return c;
    },
    sanity: async () => {
      const c = await WordConstraint.create(tinyTokenBytes(), [15], ['abc']);
      if (c.step(0, 0) < 0) throw new Error('token 0 ("a") should start the word "abc"');
    },
  }, { runs, ...o });
};

const distillOptions = options({
  loss: fc.constantFrom('reverse_kl', 'forward_kl', 'jsd', 'kl'),
  beta: fc.double({ min: 0, max: 1, noNaN: true }),
  temperature: fc.oneof(fc.double({ min: 0.05, max: 5, noNaN: true }), fc.constantFrom(1e-30, 1e30)),
  ceWeight: fc.double({ min: 0, max: 1, noNaN: true }),
});

export const fuzzDistill: FuzzProperty = async (runs, o) => {
  const student = await sharedModel('student');
  const teacher = await sharedModel('teacher', { ...TINY, n_layer: 2 }, 4);
  const shortTeacher = await sharedModel('short-teacher', { ...TINY, n_ctx: 4 }, 4);
  const otherVocab = await sharedModel('other-vocab', { ...TINY, vocab_size: V + 1 }, 4);
  const guard = restoring(student);
  const teacherArb = fc.oneof({ arbitrary: fc.constant(teacher as unknown), weight: 20 }, { arbitrary: fc.constant(student as unknown), weight: 1 }, { arbitrary: fc.constant(shortTeacher as unknown), weight: 1 }, { arbitrary: fc.constant(otherVocab as unknown), weight: 1 }, { arbitrary: hostileValue, weight: 1 });
  return runProperty({
    entry: 'distillStep',
    arbitrary: fc.tuple(mostly(fc.constant(student as unknown), hostileValue, 20), teacherArb, batchArb(V, TINY.n_ctx, 'sometimes'), distillOptions, optimizerArb),
    call: ([s, t, batch, opts, opt]) => {
      return guard(() => distillStep(s as Model, t as Model, batch as never, opts as never, opt as never));
    },
    // Fresh models: a fuzzed lr of 10 may legitimately have trained the shared student to infinity.
    sanity: async () => {
      const [s, t] = await Promise.all([Model.create(TINY, { seed: 1 }), Model.create(TINY, { seed: 2 })]);
      const r = await distillStep(s, t, { batch: 1, seq: 3, tokens: [1, 2, 3] }, {}, { lr: 1e-4 });
      await Promise.all([s.dispose(), t.dispose()]);
      if (typeof r.kl !== 'number') throw new Error('a valid distillation step after the property gave no kl');
    },
  }, { runs, ...o });
};

function pairArb(vocab: number, ctx: number): fc.Arbitrary<unknown> {
  const ids = (max: number): fc.Arbitrary<unknown> => tokenIds(vocab, max);
  return fc.oneof(
    { arbitrary: fc.record({ prompt: ids(3), chosen: ids(3), rejected: ids(3) }), weight: 20 },
    { arbitrary: fc.record({ prompt: ids(3), chosen: ids(3), rejected: ids(3) }, { requiredKeys: [] }), weight: 1 },
    { arbitrary: fc.record({ prompt: ids(ctx), chosen: ids(ctx), rejected: ids(2) }), weight: 1 },
    { arbitrary: hostileValue, weight: 1 },
  );
}

export const fuzzDpo: FuzzProperty = async (runs, o) => {
  const policy = await sharedModel('policy');
  const referenceModel = await sharedModel('reference', TINY, 9);
  const otherVocab = await sharedModel('other-vocab', { ...TINY, vocab_size: V + 1 }, 4);
  const guard = restoring(policy);
  const pairs = fc.oneof({ arbitrary: fc.array(pairArb(V, TINY.n_ctx), { minLength: 1, maxLength: 3 }), weight: 12 }, { arbitrary: hostileValue, weight: 1 });
  const logps = (n: number): fc.Arbitrary<unknown> => mostly(fc.array(fc.oneof(fc.double({ min: -50, max: 0, noNaN: true }), edgeNumber), { minLength: n, maxLength: n }), hostileValue, 6);
  const reference = fc.oneof(
    { arbitrary: fc.constant(referenceModel as unknown), weight: 4 },
    { arbitrary: fc.constant(null), weight: 2 },
    { arbitrary: fc.constantFrom(policy as unknown, otherVocab as unknown), weight: 1 },
  );
  const dpoOptions = fc.integer({ min: 1, max: 3 }).chain((n) => {
    const ref = fc.oneof({ arbitrary: reference, weight: 3 }, { arbitrary: fc.record({ chosen: logps(n), rejected: logps(n) }, { requiredKeys: [] }), weight: 1 });
    const beta = fc.oneof({ arbitrary: fc.double({ min: 0.01, max: 2, noNaN: true }), weight: 12 }, { arbitrary: fc.constantFrom(1e-300, 1e30), weight: 1 });
    return fc.oneof(
      options({ beta, lossType: fc.constant('sigmoid'), labelSmoothing: fc.double({ min: 0, max: 0.49, noNaN: true }), reference: ref }),
      options({ beta, lossType: fc.constantFrom('ipo', 'hinge'), reference: ref }),
    );
  });
  return runProperty({
    entry: 'dpoStep',
    arbitrary: fc.tuple(mostly(fc.constant(policy as unknown), hostileValue, 20), pairs, dpoOptions, optimizerArb),
    call: ([p, ps, opts, opt]) => guard(() => dpoStep(p as Model, ps as never, opts as never, opt as never)),
    sanity: async () => {
      const fresh = await Model.create(TINY, { seed: 1 });
      const r = await dpoStep(fresh, [{ prompt: [1], chosen: [2, 3], rejected: [4] }], { reference: referenceModel }, { lr: 1e-4 });
      await fresh.dispose();
      if (typeof r.loss !== 'number') throw new Error('a valid DPO step after the property gave no loss');
    },
  }, { runs, ...o });
};

export const fuzzSequenceLogProbs: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('logprobs');
  const mask = (n: number): fc.Arbitrary<unknown> => mostly(fc.tuple(fc.constant(0), fc.array(fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 2, noNaN: true }), edgeNumber), { minLength: n - 1, maxLength: n - 1 })).map(([a, rest]) => [a, ...rest]), hostileValue, 6);
  const seqsAndMasks = fc.array(fc.integer({ min: 0, max: TINY.n_ctx + 2 }), { minLength: 0, maxLength: 3 }).chain((lengths) => fc.tuple(
    mostly(fc.tuple(...lengths.map((n) => fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: n, maxLength: n }))), hostileValue, 10),
    mostly(fc.tuple(...lengths.map((n) => mask(Math.max(1, n)))), hostileValue, 10),
  ));
  return runProperty({
    entry: 'sequenceLogProbs',
    arbitrary: fc.oneof(
      fc.tuple(fc.constant('sequences' as const), mostly(fc.constant(m as unknown), hostileValue, 20), seqsAndMasks),
      fc.tuple(fc.constant('pairs' as const), mostly(fc.constant(m as unknown), hostileValue, 20), fc.tuple(mostly(fc.array(pairArb(V, TINY.n_ctx), { minLength: 1, maxLength: 3 }), hostileValue, 10), fc.constant(undefined))),
    ),
    call: ([kind, model, [a, b]]) => (kind === 'sequences' ? sequenceLogProbs(model as Model, a as never, b as never) : preferenceLogProbs(model as Model, a as never)),
    sanity: async () => {
      const r = await sequenceLogProbs(m, [[1, 2, 3]], [[0, 1, 1]]);
      if (!(r[0] < 0)) throw new Error('a valid sequenceLogProbs call after the property gave no log-prob');
    },
  }, { runs, ...o });
};
