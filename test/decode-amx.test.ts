// Decoding with bf16 weights on Intel AMX tiles (native/decode/amx.cc): shapes that do not fill a tile
// (K not a multiple of 32, a vocabulary not a multiple of 64, 1 to 48 rows), batches that equal each
// prompt alone to the bit, the packed weights kept with the model and rebuilt after every write, and the
// same results as the AVX-512 bf16 path up to the rounding of activations. Skips loudly without AMX.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, type ModelConfig } from '../lib/model/model.ts';
import { generate } from '../lib/model/generate.ts';
import { native } from '../lib/native.ts';
import { spreadModel } from './helpers/models.ts';

// n_embd 48: K = 48 and 192 pad to 64 and 192; vocab 1000 pads to 1024; 3 heads of 16.
const ODD: ModelConfig = { vocab_size: 1000, n_ctx: 32, n_layer: 2, n_head: 3, n_embd: 48 };
const PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [9], [3, 30, 12], [999, 0, 500, 7], [42, 42]];
const AMX = native.decodeBf16Isa() === 'amx';

function firstStepLogits(out: Awaited<ReturnType<typeof generate>>, V: number): Float32Array[] {
  return out.map((g) => g[0].logits!.slice(0, V));
}

function worstGap(a: Float32Array, b: Float32Array): { gap: number; range: number } {
  let gap = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let v = 0; v < a.length; v++) {
    gap = Math.max(gap, Math.abs(a[v] - b[v]));
    lo = Math.min(lo, a[v]);
    hi = Math.max(hi, a[v]);
  }
  return { gap, range: hi - lo };
}

if (process.env.MINIELM_AMX_CHILD === '1') {
  // Child mode (MINIELM_DECODE_ISA=avx512): print the bf16 first-step logits of the AVX-512 path.
  const m = await spreadModel(ODD, 3);
  const out = await generate(m, PROMPTS, { strategy: 'greedy', maxNewTokens: 2, logits: true, weights: 'bf16' });
  process.stdout.write(JSON.stringify({ isa: native.decodeBf16Isa(), logits: firstStepLogits(out, ODD.vocab_size).map((l) => Array.from(l)) }));
  await m.dispose();
} else if (!AMX) {
  test('AMX decoding (SKIPPED: this CPU or OS offers no AMX tiles; the bf16 path runs the AVX-512 kernels)', () => {
    console.log(`  SKIP: decodeBf16Isa() = ${native.decodeBf16Isa()}, not amx`);
  });
  test.run();
} else {
  test('odd shapes: bf16 logits on tiles within 2 % of fp32 and of the AVX-512 bf16 path', async () => {
    const m = await spreadModel(ODD, 3);
    const V = ODD.vocab_size;
    const opts = { strategy: 'greedy' as const, maxNewTokens: 2, logits: true };
    const fp32 = firstStepLogits(await generate(m, PROMPTS, opts), V);
    const amx = firstStepLogits(await generate(m, PROMPTS, { ...opts, weights: 'bf16' }), V);
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, MINIELM_AMX_CHILD: '1', MINIELM_DECODE_ISA: 'avx512' },
      encoding: 'utf8',
    });
    assert.is(child.status, 0, child.stderr.slice(-2000));
    const other = JSON.parse(child.stdout) as { isa: string; logits: number[][] };
    assert.is(other.isa, 'avx512', 'MINIELM_DECODE_ISA=avx512 turns AMX off');
    for (let i = 0; i < PROMPTS.length; i++) {
      const vsFp32 = worstGap(fp32[i], amx[i]);
      assert.ok(vsFp32.gap > 0, 'the tile path really ran');
      assert.ok(vsFp32.gap < 0.02 * vsFp32.range, `prompt ${i}: max |amx - fp32| = ${vsFp32.gap}, range ${vsFp32.range}`);
      const vsAvx = worstGap(Float32Array.from(other.logits[i]), amx[i]);
      assert.ok(vsAvx.gap < 0.02 * vsAvx.range, `prompt ${i}: max |amx - avx512 bf16| = ${vsAvx.gap}, range ${vsAvx.range}`);
    }
    await m.dispose();
  });

  test('a batch of 1 to 48 rows per step gives each prompt the bits it gets alone (beam and sampling)', async () => {
    const m = await spreadModel(ODD, 5);
    for (const opts of [
      { strategy: 'beam' as const, numBeams: 8, numReturnSequences: 8, maxNewTokens: 6, weights: 'bf16' as const },
      { strategy: 'sample' as const, numReturnSequences: 7, seed: 11, maxNewTokens: 6, weights: 'bf16' as const },
    ]) {
      const together = await generate(m, PROMPTS, opts);
      for (let i = 0; i < PROMPTS.length; i++) {
        const alone = await generate(m, [PROMPTS[i]], opts);
        assert.equal(together[i].map((g) => [Array.from(g.tokens), g.logprob]), alone[0].map((g) => [Array.from(g.tokens), g.logprob]), `${opts.strategy}, prompt ${i}`);
      }
    }
    await m.dispose();
  });

  test('the packed weights are reused while the weights stand still and rebuilt after a write or a training step', async () => {
    const m = await spreadModel(ODD, 7);
    const V = ODD.vocab_size;
    const opts = { strategy: 'greedy' as const, maxNewTokens: 3, logits: true, weights: 'bf16' as const };
    const before = firstStepLogits(await generate(m, PROMPTS, opts), V);
    assert.equal(firstStepLogits(await generate(m, PROMPTS, opts), V), before, 'a second generation reuses the same packing');

    // A write to one tensor must reach the next generation.
    const w = m.readTensor('h.1.mlp.c_proj.weight');
    for (let i = 0; i < w.length; i++) w[i] *= -1.5;
    m.writeTensor('h.1.mlp.c_proj.weight', w);
    const afterWrite = firstStepLogits(await generate(m, PROMPTS, opts), V);
    const fresh = await Model.create(ODD, { seed: 99 });
    for (const t of m.tensors()) fresh.writeTensor(t.name, m.readTensor(t.name));
    assert.equal(afterWrite, firstStepLogits(await generate(fresh, PROMPTS, opts), V), 'after a write: the same logits as a model holding those weights');
    assert.ok(worstGap(before[0], afterWrite[0]).gap > 0, 'the write changed the logits');

    // So must an optimizer step.
    const tokens = [1, 2, 3, 4, 5, 6, 7, 8];
    await m.trainStep({ batch: 1, seq: 8, tokens, targets: [...tokens.slice(1), 9] }, { lr: 0.05 });
    const afterStep = firstStepLogits(await generate(m, PROMPTS, opts), V);
    for (const t of m.tensors()) fresh.writeTensor(t.name, m.readTensor(t.name));
    assert.equal(afterStep, firstStepLogits(await generate(fresh, PROMPTS, opts), V), 'after a training step: the same logits as a model holding the new weights');
    assert.ok(worstGap(afterWrite[0], afterStep[0]).gap > 0, 'the step changed the logits');
    await m.dispose();
    await fresh.dispose();
  });

  test.run();
}
