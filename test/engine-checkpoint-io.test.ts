// Checkpoint tensor I/O runs in the engine's workers (native/napi/io.cc): Model.load converts F16 / BF16 / F64
// files to float32 there, checks NaN / Inf there, and Model.save copies the tensors out there. These tests
// hold the native conversions to the TypeScript decoder, bit for bit, and check the refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, withNativeHandle } from '../lib/model/model.ts';
import { decodeTensor, parseSafetensors, type Dtype } from '../lib/model/safetensors.ts';
import { native } from '../lib/native.ts';
import { MinielmError } from '../lib/errors.ts';

const CONFIG = { vocab_size: 40, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };
let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-ckptio-'));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) {
    // subnormal half (or zero): shift the implicit bit in
    if (exp < -10) return sign;
    return sign | ((mant | 0x800000) >>> (14 - exp));
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

/** Re-encodes a float32 safetensors buffer with every tensor stored as `dtype`. */
function reencode(buf: Buffer, dtype: Dtype, file: string): Buffer {
  const parsed = parseSafetensors(buf, file);
  const bytes = { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
  const header: Record<string, unknown> = { __metadata__: parsed.metadata };
  let off = 0;
  for (const [name, t] of parsed.tensors) {
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + t.data.length * bytes] };
    off += t.data.length * bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of parsed.tensors.values()) {
    for (const v of t.data) {
      if (dtype === 'F64') out.writeDoubleLE(v, pos);
      else if (dtype === 'F32') out.writeFloatLE(v, pos);
      else if (dtype === 'F16') out.writeUInt16LE(toHalf(v), pos);
      else out.writeUInt16LE(new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16, pos);
      pos += bytes;
    }
  }
  return out;
}

test('F16, BF16 and F64 checkpoints load to exactly the values the TypeScript decoder gives', async () => {
  const model = await Model.create(CONFIG, { seed: 5 });
  // Spread the weights over many magnitudes, including half-precision subnormals.
  const wte = model.readTensor('wte.weight');
  for (let i = 0; i < wte.length; i++) wte[i] = (i % 7 === 0 ? 3e-6 : 1) * Math.sin(i * 1.7) * 2 ** ((i % 9) - 4);
  model.writeTensor('wte.weight', wte);
  const src = join(dir, 'f32');
  await model.save(src);
  const f32 = await readFile(join(src, 'model.safetensors'));
  for (const dtype of ['F16', 'BF16', 'F64'] as const) {
    const out = join(dir, dtype);
    await mkdir(out, { recursive: true });
    await copyFile(join(src, 'config.json'), join(out, 'config.json'));
    const buf = reencode(f32, dtype, dtype);
    await writeFile(join(out, 'model.safetensors'), buf);
    const loaded = await Model.load(out);
    const expected = parseSafetensors(buf, dtype);
    let compared = 0;
    for (const [name, t] of expected.tensors) {
      const got = loaded.readTensor(name);
      assert.equal(Array.from(got), Array.from(t.data), `${dtype} ${name}`);
      compared += got.length;
    }
    assert.ok(compared > 1000);
    await loaded.dispose();
  }
  // The subnormal halves are really there (the F16 file holds values below 2^-14).
  const half = parseSafetensors(reencode(f32, 'F16', 'x'), 'x').tensors.get('wte.weight')!.data;
  assert.ok(half.some((v) => v !== 0 && Math.abs(v) < 2 ** -14), 'the F16 file holds subnormal values');
  assert.equal(Array.from(decodeTensor(Buffer.from([0x01, 0x00]), 'F16', 1)), [2 ** -24]);
  await model.dispose();
});

test('a NaN in a BF16 checkpoint or in the optimizer state is refused, and the half-built model is freed', async () => {
  const model = await Model.create(CONFIG, { seed: 6 });
  await model.trainStep({ batch: 1, seq: 4, tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5] }, { lr: 1e-3 });
  const src = join(dir, 'state');
  await model.save(src, { trainingState: true });
  const bf = reencode(await readFile(join(src, 'model.safetensors')), 'BF16', 'x');
  const headerLen = Number(bf.readBigUInt64LE(0));
  bf.writeUInt16LE(0x7fc0, 8 + headerLen + 2 * 3); // a bf16 NaN in the first tensor
  const nanDir = join(dir, 'nan');
  await mkdir(nanDir, { recursive: true });
  await copyFile(join(src, 'config.json'), join(nanDir, 'config.json'));
  await writeFile(join(nanDir, 'model.safetensors'), bf);
  try {
    await Model.load(nanDir);
    assert.unreachable('NaN accepted');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.is((err as MinielmError).code, 'MINIELM_CHECKPOINT');
    assert.match((err as Error).message, /contains NaN or Inf/);
  }
  // Optimizer state with an Inf.
  const st = await readFile(join(src, 'training_state.safetensors'));
  const sh = Number(st.readBigUInt64LE(0));
  st.writeFloatLE(Infinity, 8 + sh + 4);
  await writeFile(join(src, 'training_state.safetensors'), st);
  try {
    await Model.load(src, { trainingState: true });
    assert.unreachable('Inf in the optimizer state accepted');
  } catch (err) {
    assert.is((err as MinielmError).code, 'MINIELM_CHECKPOINT');
    assert.match((err as Error).message, /optimizer state .* contains NaN or Inf/);
  }
  assert.ok(await Model.load(src), 'the weights alone still load');
  await model.dispose();
});

test('the raw tensor I/O refuses ranges outside the buffer, unknown tensors and a busy or disposed model', async () => {
  const model = await Model.create(CONFIG, { seed: 7 });
  await withNativeHandle(model, async (nm) => {
    const small = new Uint8Array(16);
    for (const call of [
      () => native.readTensors(nm, ['param'], ['wte.weight'], small, Float64Array.of(0)),
      () => native.readTensors(nm, ['param'], ['nope'], new Uint8Array(1 << 16), Float64Array.of(0)),
      () => native.readTensors(nm, ['grad'], ['wte.weight'], new Uint8Array(1 << 16), Float64Array.of(0)),
      () => native.readTensors(nm, ['param'], ['wpe.weight'], new Uint8Array(1 << 16), Float64Array.of(-4)),
      () => native.writeTensors(nm, ['param'], ['wpe.weight'], new Uint8Array(1 << 16), Float64Array.of(0), Uint8Array.of(9)),
      () => native.writeTensors(nm, ['param', 'param'], ['wpe.weight'], new Uint8Array(1 << 16), Float64Array.of(0), Uint8Array.of(0)),
    ]) {
      let code = '';
      try {
        await call();
      } catch (err) {
        code = (err as MinielmError).code;
      }
      assert.is(code, 'MINIELM_INVALID_ARGUMENT');
    }
    // Two jobs at once on one model: the second is refused, the first completes.
    const big = new Uint8Array(CONFIG.vocab_size * CONFIG.n_embd * 4);
    const first = native.readTensors(nm, ['param'], ['wte.weight'], big, Float64Array.of(0));
    let busy = '';
    try {
      await native.readTensors(nm, ['param'], ['wte.weight'], big, Float64Array.of(0));
    } catch (err) {
      busy = (err as MinielmError).code;
    }
    await first;
    assert.is(busy, 'MINIELM_BUSY');
    assert.equal(Array.from(new Float32Array(big.buffer)), Array.from(model.readTensor('wte.weight')));
  });
  await model.dispose();
});

test.run();
