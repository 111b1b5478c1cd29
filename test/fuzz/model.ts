// Properties over the engine's public entries: Model.create, Model.load (hostile checkpoint folders), forward,
// trainStep / train, score / trainScoreStep and the tensor accessors, all on a tiny model.
import fc from 'fast-check';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../lib/model/model.ts';
import { arrayOf, badTokenId, byteMutations, edgeNumber, hostileValue, jsonMutations, mostly, mutateBytes, mutateJson, options, type ByteMutation, type JsonMutation } from './arbitraries.ts';
import { checkpointFiles, scratch, sharedModel, TINY } from './fixtures.ts';
import { runProperty, type FuzzProperty } from './harness.ts';

const V = TINY.vocab_size;

// ---- configs ----

const smallConfig = {
  vocab_size: fc.integer({ min: 1, max: 40 }),
  n_ctx: fc.integer({ min: 1, max: 16 }),
  n_layer: fc.integer({ min: 1, max: 2 }),
  n_head: fc.constantFrom(1, 2, 4),
  n_embd: fc.constantFrom(1, 2, 4, 8, 16),
  score_head: fc.boolean(),
};

/** Bytes the engine would really allocate for `c` (weights, gradients, both moments), or 0 when it refuses the config. */
export function engineBytes(c: unknown): number {
  if (!c || typeof c !== 'object') return 0;
  const r = c as Record<string, unknown>;
  const limits: Record<string, number> = { vocab_size: 2 ** 22, n_ctx: 2 ** 16, n_layer: 256, n_head: 1024, n_embd: 2 ** 16 };
  const v: Record<string, number> = {};
  for (const [k, max] of Object.entries(limits)) {
    const x = r[k];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > max) return 0;
    v[k] = x;
  }
  if (v.n_embd % v.n_head !== 0) return 0;
  const C = v.n_embd;
  return 16 * ((v.vocab_size + v.n_ctx) * C + v.n_layer * (12 * C * C + 13 * C) + 3 * C);
}

/** Valid but costly configs are left out (they are not bad inputs, only slow ones); refused ones stay in. */
export function affordable(c: unknown): boolean {
  const bytes = engineBytes(c);
  return bytes < 64e6 || bytes > 2 * totalmem();
}

const configArb = fc.oneof({ arbitrary: options(smallConfig), weight: 9 }, { arbitrary: hostileValue, weight: 1 }).filter(affordable);

export const fuzzModelCreate: FuzzProperty = (runs, o) =>
  runProperty({
    entry: 'Model.create',
    arbitrary: fc.tuple(configArb, fc.oneof(fc.constant(undefined), options({ seed: fc.oneof(fc.nat(), edgeNumber) }))),
    call: ([config, opts]) => Model.create(config as never, opts as never),
    check: (m) => (m instanceof Model ? undefined : 'Model.create resolved to something else than a Model'),
    cleanup: (m) => (m as Model).dispose(),
    sanity: async () => {
      const m = await Model.create(TINY, { seed: 1 });
      await m.forward({ batch: 1, seq: 2, tokens: [1, 2] });
      await m.dispose();
    },
  }, { runs, ...o });

// ---- checkpoint folders ----

/** Rewrites the JSON header of a safetensors file, keeping its data bytes. */
export function rewriteHeader(bytes: Uint8Array, edit: (header: unknown) => unknown): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as unknown;
  const json = Buffer.from(JSON.stringify(edit(header)) ?? 'null');
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + n), 8 + json.length);
  return out;
}

/** Writes a non-finite value over float32 number `index` of the data section. */
export function poison(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const view = new DataView(out.buffer);
  const start = 8 + Number(view.getBigUint64(0, true));
  const count = Math.floor((out.length - start) / 4);
  if (count > 0) view.setFloat32(start + 4 * (index % count), value, true);
  return out;
}

export type FileSpec =
  | { kind: 'valid' }
  | { kind: 'missing' }
  | { kind: 'directory' }
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'bytes'; mutations: ByteMutation[] }
  | { kind: 'json'; mutations: JsonMutation[]; maxDepth?: number }
  | { kind: 'nonFinite'; index: number; value: number };

export const safetensorsSpec: fc.Arbitrary<FileSpec> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 2 },
  { arbitrary: fc.constantFrom({ kind: 'missing' as const }, { kind: 'directory' as const }), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'random' as const, bytes })), weight: 1 },
  { arbitrary: byteMutations.map((mutations) => ({ kind: 'bytes' as const, mutations })), weight: 4 },
  { arbitrary: jsonMutations.map((mutations) => ({ kind: 'json' as const, mutations })), weight: 3 },
  { arbitrary: fc.tuple(jsonMutations, fc.integer({ min: 1, max: 3 })).map(([mutations, maxDepth]) => ({ kind: 'json' as const, mutations, maxDepth })), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('nonFinite' as const), index: fc.nat(), value: fc.constantFrom(NaN, Infinity, -Infinity) }), weight: 1 },
);

export const jsonFileSpec: fc.Arbitrary<FileSpec> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 2 },
  { arbitrary: fc.constantFrom({ kind: 'missing' as const }, { kind: 'directory' as const }), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'random' as const, bytes })), weight: 1 },
  { arbitrary: byteMutations.map((mutations) => ({ kind: 'bytes' as const, mutations })), weight: 2 },
  { arbitrary: jsonMutations.map((mutations) => ({ kind: 'json' as const, mutations })), weight: 5 },
  { arbitrary: fc.tuple(jsonMutations, fc.integer({ min: 1, max: 3 })).map(([mutations, maxDepth]) => ({ kind: 'json' as const, mutations, maxDepth })), weight: 3 },
);

/** The bytes `spec` makes of a valid file (`json`: the file is JSON; otherwise a safetensors file). */
export function fileBytes(valid: Uint8Array, spec: FileSpec, json: boolean): Uint8Array | 'missing' | 'directory' {
  switch (spec.kind) {
    case 'valid':
      return valid;
    case 'missing':
    case 'directory':
      return spec.kind;
    case 'random':
      return spec.bytes;
    case 'bytes':
      return mutateBytes(valid, spec.mutations);
    case 'json':
      return json
        ? Buffer.from(JSON.stringify(mutateJson(JSON.parse(Buffer.from(valid).toString('utf8')), spec.mutations, spec.maxDepth)) ?? 'null')
        : rewriteHeader(valid, (h) => mutateJson(h, spec.mutations, spec.maxDepth));
    case 'nonFinite':
      return poison(valid, spec.index, spec.value);
  }
}

export async function writeSpec(file: string, content: Uint8Array | 'missing' | 'directory'): Promise<void> {
  await rm(file, { recursive: true, force: true });
  if (content === 'missing') return;
  if (content === 'directory') await mkdir(file, { recursive: true });
  else await writeFile(file, content);
}

const loadInput = fc.record({
  config: jsonFileSpec,
  weights: safetensorsSpec,
  state: fc.option(safetensorsSpec, { nil: undefined }),
  options: fc.oneof(fc.constant(undefined), options({ trainingState: fc.boolean() })),
  dir: fc.oneof({ arbitrary: fc.constant('folder' as unknown), weight: 20 }, { arbitrary: hostileValue, weight: 1 }),
});

export const fuzzModelLoad: FuzzProperty = async (runs, o) => {
  const files = await checkpointFiles(TINY);
  const dir = join(await scratch(), 'load');
  await mkdir(dir, { recursive: true });
  const config = Buffer.from(files.config);
  return runProperty({
    entry: 'Model.load',
    arbitrary: loadInput,
    call: async (input) => {
      const configBytes = fileBytes(config, input.config, true);
      await writeSpec(join(dir, 'config.json'), configBytes);
      await writeSpec(join(dir, 'model.safetensors'), fileBytes(files.weights, input.weights, false));
      await writeSpec(join(dir, 'training_state.safetensors'), input.state ? fileBytes(files.trainingState, input.state, false) : 'missing');
      return Model.load((input.dir === 'folder' ? dir : input.dir) as string, input.options as never);
    },
    check: (m) => (m instanceof Model ? undefined : 'Model.load resolved to something else than a Model'),
    cleanup: (m) => (m as Model).dispose(),
    sanity: async () => {
      await writeSpec(join(dir, 'config.json'), config);
      await writeSpec(join(dir, 'model.safetensors'), files.weights);
      await writeSpec(join(dir, 'training_state.safetensors'), files.trainingState);
      const m = await Model.load(dir, { trainingState: true });
      await m.forward({ batch: 1, seq: 2, tokens: [1, 2] });
      await m.dispose();
    },
  }, { runs, ...o });
};

// ---- batches ----


const maskValue = fc.oneof({ arbitrary: fc.constantFrom(0, 1), weight: 6 }, { arbitrary: fc.double({ min: 0, max: 2, noNaN: true }), weight: 2 });
const badMask = fc.oneof(fc.constantFrom(-1, NaN, Infinity, -0.5), hostileValue);
const attentionValue = fc.constantFrom(0, 1);
const badAttention = fc.oneof(fc.constantFrom(2, 255, 256, -1, 0.5, NaN), hostileValue);

/** Batches for a model of vocabulary `vocab` and context `ctx`: mostly consistent, with hostile fields. */
export function batchArb(vocab: number, ctx: number, targets: 'always' | 'sometimes'): fc.Arbitrary<unknown> {
  const consistent = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.oneof({ arbitrary: fc.integer({ min: 1, max: ctx }), weight: 12 }, { arbitrary: fc.constant(ctx + 1), weight: 1 })).chain(([b, s]) => {
    const n = b * s;
    const typed = (a: fc.Arbitrary<unknown[]>, make: (x: number[]) => unknown): fc.Arbitrary<unknown> =>
      fc.oneof({ arbitrary: a, weight: 4 }, { arbitrary: a.map((x) => { try { return make(x as number[]); } catch { return x; } }), weight: 1 });
    const fields: Record<string, fc.Arbitrary<unknown>> = {
      tokens: mostly(typed(arrayOf(fc.integer({ min: 0, max: vocab - 1 }), badTokenId(vocab), n, n), (x) => Int32Array.from(x)), hostileValue, 30),
      batch: mostly(fc.constant(b), hostileValue, 30),
      seq: mostly(fc.constant(s), hostileValue, 30),
      targets: mostly(typed(arrayOf(fc.integer({ min: 0, max: vocab - 1 }), badTokenId(vocab), n, n), (x) => Int32Array.from(x)), hostileValue, 30),
      lossMask: mostly(typed(arrayOf(maskValue, badMask, n, n), (x) => Float32Array.from(x)), hostileValue, 30),
      attentionMask: mostly(typed(arrayOf(attentionValue, badAttention, n, n), (x) => Uint8Array.from(x)), hostileValue, 30),
    };
    return fc.record(fields, { requiredKeys: targets === 'always' ? ['tokens', 'batch', 'seq', 'targets'] : ['tokens', 'batch', 'seq'] });
  });
  return fc.oneof({ arbitrary: consistent, weight: 12 }, { arbitrary: hostileValue, weight: 1 });
}

export const optimizerArb = fc.oneof(
  { arbitrary: options({
    lr: fc.oneof({ arbitrary: fc.double({ min: 0, max: 0.01, noNaN: true }), weight: 20 }, { arbitrary: fc.constantFrom(0, 1e-3, 10), weight: 1 }),
    beta1: fc.double({ min: 0, max: 0.999, noNaN: true }),
    beta2: fc.double({ min: 0, max: 0.999, noNaN: true }),
    eps: fc.double({ min: 0, max: 1, noNaN: true }),
    weightDecay: fc.double({ min: 0, max: 10, noNaN: true }),
    gradClip: fc.double({ min: 0, max: 10, noNaN: true }),
    warmupSteps: fc.nat({ max: 10 }),
    totalSteps: fc.nat({ max: 100 }),
    minLrRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    schedule: fc.constantFrom('cosine', 'linear', 'constant'),
  }, true, ['lr']), weight: 12 },
  { arbitrary: fc.constant({ lr: 1e-3 }), weight: 3 },
);

/**
 * Wraps a call that trains `models`: when it fails with MINIELM_NON_FINITE (a fuzzed lr of 10 or beta of 1e30
 * can legitimately drive the weights to infinity), the weights are put back, so later inputs still reach the
 * deep paths.
 */
export function restoring(...models: Model[]): <R>(call: () => Promise<R>) => Promise<R> {
  const snapshots = models.map((m) => m.tensors().map((t) => [t.name, m.readTensor(t.name)] as const));
  return async (call) => {
    try {
      return await call();
    } catch (err) {
      if ((err as { code?: string }).code === 'MINIELM_NON_FINITE')
        models.forEach((m, i) => snapshots[i].forEach(([name, data]) => m.writeTensor(name, data)));
      throw err;
    }
  };
}

async function validForward(m: Model): Promise<void> {
  const r = await m.forward({ batch: 1, seq: 3, tokens: [1, 2, 3], targets: [2, 3, 4] });
  if (typeof r.loss !== 'number') throw new Error('the valid forward call after the property gave no loss');
}

export const fuzzForward: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('forward');
  return runProperty({
    entry: 'model.forward',
    arbitrary: fc.tuple(batchArb(V, TINY.n_ctx, 'sometimes'), fc.oneof(fc.constant(undefined), options({ logits: fc.boolean() }))),
    call: ([batch, opts]) => {
      return m.forward(batch as never, opts as never);
    },
    sanity: () => validForward(m),
  }, { runs, ...o });
};

export const fuzzTrainStep: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('train');
  const guard = restoring(m);
  const batches = fc.oneof({ arbitrary: batchArb(V, TINY.n_ctx, 'always'), weight: 6 }, { arbitrary: fc.array(batchArb(V, TINY.n_ctx, 'always'), { maxLength: 3 }), weight: 2 });
  const trainOptions = fc.oneof(fc.constant(undefined), options({ signal: fc.constantFrom(new AbortController().signal, AbortSignal.abort()), onStep: fc.constant(() => undefined) }));
  return runProperty({
    entry: 'model.trainStep',
    arbitrary: fc.oneof(
      { arbitrary: fc.tuple(fc.constant('trainStep' as const), batches, optimizerArb, fc.constant(undefined)), weight: 5 },
      { arbitrary: fc.tuple(fc.constant('train' as const), mostly(fc.array(batches, { maxLength: 2 })), optimizerArb, trainOptions), weight: 1 },
    ),
    call: ([method, batch, opt, trainOpts]) => {
      if (method === 'trainStep') {
        return guard(() => m.trainStep(batch as never, opt as never));
      }
      return guard(() => m.train(batch as never, opt as never, trainOpts as never));
    },
    sanity: () => validForward(m),
  }, { runs, ...o });
};

export const fuzzScore: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('score', { ...TINY, score_head: true });
  const guard = restoring(m);
  const plain = await sharedModel('forward');
  const n = fc.integer({ min: 0, max: 4 });
  const labels = fc.oneof(
    { arbitrary: n.chain((k) => fc.array(fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), edgeNumber), { minLength: k, maxLength: k })), weight: 6 },
    { arbitrary: hostileValue, weight: 1 },
  );
  return runProperty({
    entry: 'model.score/trainScoreStep',
    arbitrary: fc.oneof(
      fc.tuple(fc.constantFrom('score' as const, 'scorePlain' as const), batchArb(V, TINY.n_ctx, 'sometimes'), fc.constant(undefined), fc.constant(undefined), fc.constant(undefined)),
      fc.tuple(fc.constant('trainScoreStep' as const), batchArb(V, TINY.n_ctx, 'sometimes'), labels, optimizerArb, fc.oneof(fc.constant(undefined), labels)),
    ),
    call: ([method, batch, y, opt, w]) => {
      if (method === 'score') return m.score(batch as never);
      if (method === 'scorePlain') return plain.score(batch as never);
      return guard(() => m.trainScoreStep(batch as never, y as never, opt as never, w as never));
    },
    sanity: async () => {
      const s = await m.score({ batch: 1, seq: 2, tokens: [1, 2] });
      if (s.length !== 1) throw new Error('score of one sequence did not return one value');
    },
  }, { runs, ...o });
};

export const fuzzTensors: FuzzProperty = async (runs, o) => {
  const m = await sharedModel('tensors');
  const names = m.tensors().map((t) => t.name);
  const sizes = new Map(m.tensors().map((t) => [t.name, t.shape.reduce((a, b) => a * b, 1)]));
  const name = mostly(fc.constantFrom(...names), hostileValue, 3);
  const data = (size: number): fc.Arbitrary<unknown> => fc.oneof(
    { arbitrary: fc.float32Array({ minLength: size, maxLength: size, noDefaultInfinity: true, noNaN: true }), weight: 3 },
    { arbitrary: fc.float32Array({ maxLength: size + 2 }), weight: 1 },
    { arbitrary: hostileValue, weight: 1 },
  );
  const saveDir = join(await scratch(), 'save');
  return runProperty({
    entry: 'model.tensors/save',
    arbitrary: fc.oneof(
      { arbitrary: fc.tuple(fc.constant('read' as const), name, fc.constant(undefined)), weight: 2 },
      { arbitrary: fc.tuple(fc.constant('write' as const), fc.constantFrom(...names)).chain(([w, n]) => fc.tuple(fc.constant(w), fc.oneof({ arbitrary: fc.constant(n as unknown), weight: 4 }, { arbitrary: hostileValue, weight: 1 }), data(sizes.get(n) ?? 1))), weight: 4 },
      { arbitrary: fc.tuple(fc.constant('save' as const), fc.constant(undefined), fc.oneof(fc.constant(undefined), options({ trainingState: fc.boolean(), metadata: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }) }))), weight: 1 },
    ),
    call: async ([method, n, x]) => {
      if (method === 'read') return m.readTensor(n as string);
      if (method === 'write') return m.writeTensor(n as string, x as Float32Array);
      return m.save(saveDir, x as never);
    },
    sanity: () => validForward(m),
  }, { runs, ...o });
};
