// Both GEMM backends against a float64 reference and against each other; the model gives the same
// logits whichever backend runs it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../lib/native.ts';
import { Model } from '../lib/model/model.ts';
import { testIf } from './helpers/skip.ts';

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function reference(ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, B: Float32Array): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = s;
    }
  return C;
}

const info = native.gemmInfo();
const blas = info.blasAvailable;
const NO_BLAS = 'no system BLAS found (install libopenblas-dev); only the built-in GEMM is tested';
// .ci/run installs OpenBLAS and sets MINIELM_REQUIRE_BLAS=1: there a missing BLAS is a failure, not a skip.
if (process.env.MINIELM_REQUIRE_BLAS === '1')
  test('a system BLAS is found (MINIELM_REQUIRE_BLAS=1)', () => {
    assert.ok(blas, `MINIELM_REQUIRE_BLAS=1 but the addon found no CBLAS library (${JSON.stringify(info)})`);
  });

test.after.each(() => {
  native.setGemmBackend('builtin');
});

for (const backend of ['builtin', 'blas'] as const) {
  testIf(test, backend === 'builtin' || blas, `${backend} GEMM matches a float64 reference on odd shapes and all transposes`, NO_BLAS, () => {
    assert.ok(native.setGemmBackend(backend));
    const shapes: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [33, 65, 17], [1, 300, 64], [70, 129, 96]];
    for (const [M, N, K] of shapes)
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const A = rand(M * K, M + N), B = rand(K * N, K + 7);
          const got = native.gemm(ta, tb, M, N, K, A, B);
          const want = reference(ta, tb, M, N, K, A, B);
          let worst = 0;
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
          assert.ok(worst < 1e-4 * Math.sqrt(K), `${backend} ${M}x${N}x${K} ta=${ta} tb=${tb}: max error ${worst}`);
        }
  });
}

testIf(test, blas, 'BLAS and built-in GEMM agree on a model-sized product', NO_BLAS, () => {
  const M = 256, N = 768, K = 256;
  const A = rand(M * K, 1), B = rand(K * N, 2);
  native.setGemmBackend('builtin');
  const a = native.gemm(false, false, M, N, K, A, B);
  native.setGemmBackend('blas');
  const b = native.gemm(false, false, M, N, K, A, B);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-4, `max difference ${worst}`);
});

testIf(test, blas, 'a model gives the same logits with either backend', NO_BLAS, async () => {
  const model = await Model.create({ vocab_size: 97, n_ctx: 16, n_layer: 2, n_head: 2, n_embd: 32 }, { seed: 5 });
  const tokens = Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 7) % 97);
  native.setGemmBackend('builtin');
  const a = (await model.forward({ tokens, batch: 2, seq: 16 }, { logits: true })).logits!;
  native.setGemmBackend('blas');
  const b = (await model.forward({ tokens, batch: 2, seq: 16 }, { logits: true })).logits!;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-4, `max logit difference ${worst}`);
});

test.run();
