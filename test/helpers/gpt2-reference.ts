// A plain-JavaScript GPT-2 forward pass written straight from Hugging Face's modeling_gpt2 semantics
// (Conv1D: y = x·W + b with W [in, out]; c_attn output split into q | k | v, heads contiguous; tanh GELU;
// tied LM head). Slow and simple on purpose: the engine's logits are checked against it.
export type Weights = Map<string, Float32Array>;

export interface RefConfig {
  vocab_size: number;
  n_ctx: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
}

function layerNorm(x: Float64Array, w: Float32Array, b: Float32Array): Float64Array {
  const n = x.length;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= n;
  let varSum = 0;
  for (const v of x) varSum += (v - mean) ** 2;
  const rstd = 1 / Math.sqrt(varSum / n + 1e-5);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * rstd * w[i] + b[i];
  return out;
}

function conv1d(x: Float64Array, W: Float32Array, b: Float32Array, out: number): Float64Array {
  const inp = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b[o];
    for (let i = 0; i < inp; i++) s += x[i] * W[i * out + o];
    y[o] = s;
  }
  return y;
}

const gelu = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** Logits [T, V] for one unpadded sequence. */
export function referenceLogits(cfg: RefConfig, w: Weights, tokens: number[]): Float64Array[] {
  const C = cfg.n_embd, H = cfg.n_head, hs = C / H, T = tokens.length;
  const get = (n: string): Float32Array => {
    const t = w.get(n);
    if (!t) throw new Error(`reference: missing ${n}`);
    return t;
  };
  let xs: Float64Array[] = tokens.map((tok, t) => {
    const v = new Float64Array(C);
    for (let c = 0; c < C; c++) v[c] = get('wte.weight')[tok * C + c] + get('wpe.weight')[t * C + c];
    return v;
  });
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}.`;
    const qkv = xs.map((x) => conv1d(layerNorm(x, get(`${p}ln_1.weight`), get(`${p}ln_1.bias`)), get(`${p}attn.c_attn.weight`), get(`${p}attn.c_attn.bias`), 3 * C));
    const attOut = xs.map((_, t) => {
      const o = new Float64Array(C);
      for (let h = 0; h < H; h++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < hs; i++) d += qkv[t][h * hs + i] * qkv[s][C + h * hs + i];
          scores.push(d / Math.sqrt(hs));
        }
        const m = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hs; i++) o[h * hs + i] += (e[s] / z) * qkv[s][2 * C + h * hs + i];
      }
      return o;
    });
    xs = xs.map((x, t) => {
      const a = conv1d(attOut[t], get(`${p}attn.c_proj.weight`), get(`${p}attn.c_proj.bias`), C);
      const r = x.map((v, i) => v + a[i]);
      const f = conv1d(layerNorm(r, get(`${p}ln_2.weight`), get(`${p}ln_2.bias`)), get(`${p}mlp.c_fc.weight`), get(`${p}mlp.c_fc.bias`), 4 * C).map(gelu);
      const m = conv1d(f, get(`${p}mlp.c_proj.weight`), get(`${p}mlp.c_proj.bias`), C);
      return r.map((v, i) => v + m[i]);
    });
  }
  return xs.map((x) => {
    const n = layerNorm(x, get('ln_f.weight'), get('ln_f.bias'));
    const logits = new Float64Array(cfg.vocab_size);
    for (let v = 0; v < cfg.vocab_size; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += n[c] * get('wte.weight')[v * C + c];
      logits[v] = s;
    }
    return logits;
  });
}
