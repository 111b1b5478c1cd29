// Small models with decisive logits and cache-free references, shared by the decoding suites.
import { Model, type ModelConfig } from '../../lib/model/model.ts';

// Random-init GPT-2 logits are almost flat; larger embeddings give distributions with clear winners and
// losers, so orderings are not decided by rounding.
export async function spreadModel(config: ModelConfig, seed: number, scale = 1.5): Promise<Model> {
  const m = await Model.create(config, { seed });
  let s = seed + 12345;
  const rand = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
  for (const name of ['wte.weight', 'wpe.weight']) {
    const w = m.readTensor(name);
    for (let i = 0; i < w.length; i++) w[i] = rand() * 2 * scale;
    m.writeTensor(name, w);
  }
  return m;
}

/** Last-position logits of the full (cache-free) forward pass over `tokens`. */
export async function lastLogits(m: Model, tokens: number[]): Promise<Float64Array> {
  const V = m.config.vocab_size;
  const f = await m.forward({ batch: 1, seq: tokens.length, tokens }, { logits: true });
  return Float64Array.from(f.logits!.subarray((tokens.length - 1) * V, tokens.length * V));
}

export function logSoftmax(x: Float64Array, temperature = 1): Float64Array {
  let mx = -Infinity;
  for (const v of x) mx = Math.max(mx, v / temperature);
  let sum = 0;
  for (const v of x) sum += Math.exp(v / temperature - mx);
  const lse = mx + Math.log(sum);
  return x.map((v) => v / temperature - lse);
}

