// Checkpoints: save -> load gives identical logits; resume is bit-identical to an uninterrupted run; a
// user-style Hugging Face GPT-2 folder loads and matches both its writer and an independent JS reference;
// broken files give clear errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, writeFile, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, type Batch } from '../lib/model/model.ts';
import { encodeSafetensors, type TensorToWrite } from '../lib/model/safetensors.ts';
import { referenceLogits } from './helpers/gpt2-reference.ts';

const CONFIG = { vocab_size: 50, n_ctx: 16, n_layer: 2, n_head: 2, n_embd: 16 };
let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-ckpt-'));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function batch(seed: number): Batch {
  const B = 4, T = 10;
  const tokens = Array.from({ length: B * T }, (_, i) => (i * 7 + seed * 13) % 50);
  const targets = Array.from({ length: B * T }, (_, i) => (i * 11 + seed * 3) % 50);
  return { batch: B, seq: T, tokens, targets };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('save -> load gives identical logits, and the write is atomic (no temp files left)', async () => {
  const model = await Model.create(CONFIG, { seed: 11 });
  await model.trainStep(batch(0), { lr: 1e-2 });
  const out = join(dir, 'saved');
  await model.save(out);
  const files = (await readdir(out)).sort();
  assert.equal(files, ['config.json', 'model.safetensors']);
  const loaded = await Model.load(out);
  assert.equal(loaded.config, CONFIG);
  const a = (await model.forward(batch(1), { logits: true })).logits!;
  const b = (await loaded.forward(batch(1), { logits: true })).logits!;
  assert.is(maxDiff(a, b), 0);
});

test('resume from a checkpoint is bit-identical to an uninterrupted run', async () => {
  const opt = { lr: 3e-3, warmupSteps: 2, totalSteps: 8, weightDecay: 0.1 };
  const straight = await Model.create(CONFIG, { seed: 21 });
  for (let s = 0; s < 8; s++) await straight.trainStep(batch(s), opt);

  const first = await Model.create(CONFIG, { seed: 21 });
  for (let s = 0; s < 4; s++) await first.trainStep(batch(s), opt);
  const ck = join(dir, 'resume');
  await first.save(ck, { trainingState: true });
  await first.dispose();
  const resumed = await Model.load(ck, { trainingState: true });
  assert.is(resumed.step, 4);
  for (let s = 4; s < 8; s++) await resumed.trainStep(batch(s), opt);
  for (const { name } of straight.tensors()) {
    const a = straight.readTensor(name), b = resumed.readTensor(name);
    assert.ok(a.every((v, i) => Object.is(v, b[i])), `tensor ${name} differs after resume (max ${maxDiff(a, b)})`);
  }
});

test('a user-style Hugging Face GPT-2 checkpoint loads and matches its writer and a JS reference', async () => {
  const writer = await Model.create(CONFIG, { seed: 31 });
  // Train a little so the weights are not at their symmetric initial values (biases, LayerNorm).
  for (let s = 0; s < 3; s++) await writer.trainStep(batch(s), { lr: 1e-2 });
  const weights = new Map<string, Float32Array>();
  const tensors: TensorToWrite[] = [];
  for (const { name, shape } of writer.tensors()) {
    const data = writer.readTensor(name);
    weights.set(name, data);
    tensors.push({ name: `transformer.${name}`, shape, data });
  }
  // What transformers' save_pretrained writes for GPT2LMHeadModel: prefixed names, reversed order, the
  // tied lm_head, and the causal-mask buffers of older exports.
  tensors.reverse();
  tensors.push({ name: 'lm_head.weight', shape: [CONFIG.vocab_size, CONFIG.n_embd], data: weights.get('wte.weight')! });
  for (let l = 0; l < CONFIG.n_layer; l++)
    tensors.push({ name: `transformer.h.${l}.attn.bias`, shape: [1, 1, CONFIG.n_ctx, CONFIG.n_ctx], data: new Float32Array(CONFIG.n_ctx * CONFIG.n_ctx).fill(1) });
  const hf = join(dir, 'hf-gpt2');
  await rm(hf, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(hf));
  await writeFile(join(hf, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  await writeFile(join(hf, 'config.json'), JSON.stringify({
    activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 0, embd_pdrop: 0.1,
    eos_token_id: 0, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2', n_embd: CONFIG.n_embd,
    n_head: CONFIG.n_head, n_inner: null, n_layer: CONFIG.n_layer, n_positions: CONFIG.n_ctx, resid_pdrop: 0.1,
    torch_dtype: 'float32', transformers_version: '4.44.0', use_cache: true, vocab_size: CONFIG.vocab_size,
  }));
  const user = await Model.load(hf);
  const tokens = [3, 17, 42, 5, 9, 0, 31];
  const b: Batch = { batch: 1, seq: tokens.length, tokens };
  const mine = (await writer.forward(b, { logits: true })).logits!;
  const theirs = (await user.forward(b, { logits: true })).logits!;
  assert.is(maxDiff(mine, theirs), 0, 'same logits as the model that wrote the checkpoint');
  const ref = referenceLogits(CONFIG, weights, tokens);
  let worst = 0;
  for (let t = 0; t < tokens.length; t++)
    for (let v = 0; v < CONFIG.vocab_size; v++) worst = Math.max(worst, Math.abs(theirs[t * CONFIG.vocab_size + v] - ref[t][v]));
  assert.ok(worst < 1e-4, `engine vs JS reference GPT-2: max logit difference ${worst}`);
});

async function expectCode(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await p;
    assert.unreachable('expected an error');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    assert.is(e.code, code, `code for: ${e.message}`);
    assert.match(e.message!, pattern);
  }
}

test('truncated, corrupted and mismatched checkpoints give clear errors', async () => {
  const model = await Model.create(CONFIG, { seed: 41 });
  const good = join(dir, 'good');
  await model.save(good);
  const bytes = await readFile(join(good, 'model.safetensors'));
  const variant = async (name: string, data: Buffer, config?: object): Promise<string> => {
    const d = join(dir, name);
    await model.save(d);
    await writeFile(join(d, 'model.safetensors'), data);
    if (config) await writeFile(join(d, 'config.json'), JSON.stringify(config));
    return d;
  };
  await expectCode(Model.load(await variant('trunc', bytes.subarray(0, bytes.length - 100))), 'MINIELM_BAD_FILE', /truncated/);
  await expectCode(Model.load(await variant('tiny', bytes.subarray(0, 5))), 'MINIELM_BAD_FILE', /shorter than/);
  const corrupt = Buffer.from(bytes);
  corrupt.write('@@', 8);
  await expectCode(Model.load(await variant('corrupt', corrupt)), 'MINIELM_BAD_FILE', /not valid JSON/);
  const hugeHeader = Buffer.from(bytes);
  hugeHeader.writeBigUInt64LE(10n ** 12n, 0);
  await expectCode(Model.load(await variant('huge', hugeHeader)), 'MINIELM_BAD_FILE', /header length/);
  await expectCode(Model.load(await variant('mismatch', bytes, { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_layer: 2, n_head: 2, n_embd: 32 })), 'MINIELM_CHECKPOINT', /config does not match/);
  await expectCode(Model.load(await variant('fewer', bytes, { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_layer: 3, n_head: 2, n_embd: 16 })), 'MINIELM_CHECKPOINT', /missing tensors/);
  await expectCode(Model.load(await variant('badcfg', bytes, { model_type: 'gpt2', vocab_size: 50, n_positions: 16, n_layer: 2, n_head: 3, n_embd: 16 })), 'MINIELM_CHECKPOINT', /divisible/);
  await expectCode(Model.load(join(dir, 'does-not-exist')), 'MINIELM_NOT_FOUND', /config\.json/);
  // NaN inside the weights
  const nan = Buffer.from(bytes);
  const headerLen = Number(nan.readBigUInt64LE(0));
  nan.writeFloatLE(NaN, 8 + headerLen);
  await expectCode(Model.load(await variant('nan', nan)), 'MINIELM_CHECKPOINT', /NaN/);
});

test.run();
