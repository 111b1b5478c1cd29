// `minielm demo`: the main job on embedded defaults. Today it runs the first stage of the pipeline end to
// end: a synthetic catalog, its query-to-query pairs, a BPE tokenizer, and a small GPT-2 rewriter trained
// from scratch, printing the loss curve (llm.c-style step lines, then a plot) and the held-out loss.
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSyntheticCatalog, buildQ2Q, syntheticIntentFilter, SYNTHETIC_NOTICE } from '../data/index.ts';
import { trainTokenizer } from '../tokenizer/index.ts';
import { Model } from '../model/model.ts';
import { encodePairs, makeBatch, epochBatches } from '../train/batches.ts';
import { native } from '../native.ts';

export const help = `Usage: minielm demo [options]

Trains a small query rewriter from scratch on the built-in SYNTHETIC catalog and prints its loss curve.

Options:
  --steps N        optimizer steps (default 300)
  --batch N        pairs per step (default 32)
  --lr X           peak learning rate (default 3e-3)
  --vocab N        BPE vocabulary size (default 1024)
  --layers N       transformer layers (default 2)
  --width N        embedding width (default 128)
  --threads N      native threads (default: all cores)
  --seed N         seed for data, initialisation and batching (default 1)
  --out DIR        where the model and tokenizer are saved (default runs/demo)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '300' },
      batch: { type: 'string', default: '32' },
      lr: { type: 'string', default: '3e-3' },
      vocab: { type: 'string', default: '1024' },
      layers: { type: 'string', default: '2' },
      width: { type: 'string', default: '128' },
      threads: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string', default: join('runs', 'demo') },
    },
  });
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw Object.assign(new Error(`--${name} must be a number >= ${min}, got "${v}"`), { code: 'MINIELM_INVALID_ARGUMENT' });
    return n;
  };
  const steps = num('steps', values.steps, 1), batchSize = num('batch', values.batch, 1), lr = num('lr', values.lr, 0);
  const seed = num('seed', values.seed, 0), width = num('width', values.width, 8), layers = num('layers', values.layers, 1);
  if (values.threads) native.setNumThreads(num('threads', values.threads, 1));

  console.log(SYNTHETIC_NOTICE);
  const catalog = generateSyntheticCatalog({ seed });
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed, filter: syntheticIntentFilter(catalog) });
  console.log(`data: ${catalog.products.size} synthetic products, ${catalog.queries.length} queries -> ${q2q.train.length} train / ${q2q.test.length} test rewrite pairs`);

  const texts = [...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)];
  const tokenizer = await trainTokenizer(texts, { vocabSize: num('vocab', values.vocab, 260) });
  const nCtx = 48;
  const train = encodePairs(tokenizer, q2q.train, nCtx + 1);
  const test = encodePairs(tokenizer, q2q.test, nCtx + 1);
  console.log(`tokenizer: ${tokenizer.vocabSize} tokens; ${train.examples.length} train / ${test.examples.length} test pairs fit in ${nCtx + 1} tokens (${train.dropped + test.dropped} dropped)`);

  const config = { vocab_size: tokenizer.vocabSize, n_ctx: nCtx, n_layer: layers, n_head: 4, n_embd: width };
  const model = await Model.create(config, { seed });
  console.log(`model: ${JSON.stringify(config)}, ${model.parameterCount().toLocaleString()} parameters, ${native.numThreads()} threads`);

  const evalLoss = async (): Promise<number> => {
    let sum = 0, tokens = 0;
    for (let i = 0; i < test.examples.length; i += 64) {
      const r = await model.forward(makeBatch(test.examples.slice(i, i + 64), tokenizer.padId));
      sum += r.lossSum!;
      tokens += r.tokens!;
    }
    return sum / tokens;
  };
  const opt = { lr, warmupSteps: Math.min(20, Math.floor(steps / 10)), totalSteps: steps, weightDecay: 0.1, gradClip: 1 };
  const curve: { step: number; loss: number }[] = [];
  let epoch = 0;
  let order = epochBatches(train.examples.length, batchSize, seed);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  console.log(`test loss before training: ${(await evalLoss()).toFixed(4)}`);
  for (let step = 0; step < steps && !controller.signal.aborted; step++) {
    if (order.length === 0) order = epochBatches(train.examples.length, batchSize, seed + ++epoch);
    const batch = makeBatch(order.shift()!.map((i) => train.examples[i]), tokenizer.padId);
    const t0 = performance.now();
    const r = await model.trainStep(batch, opt);
    const ms = performance.now() - t0;
    curve.push({ step: r.step, loss: r.loss });
    if (step % 10 === 0 || step === steps - 1)
      console.log(`step ${String(r.step).padStart(4)}/${steps} | loss ${r.loss.toFixed(4)} | lr ${r.lr.toExponential(2)} | ${ms.toFixed(1)} ms | ${Math.round((batch.batch * batch.seq) / (ms / 1000))} tok/s`);
  }
  process.off('SIGINT', onSigint);
  console.log(`\n${plot(curve)}`);
  console.log(`test loss after ${curve.length} steps: ${(await evalLoss()).toFixed(4)}${controller.signal.aborted ? ' (interrupted)' : ''}`);
  await mkdir(values.out!, { recursive: true });
  await model.save(values.out!);
  await tokenizer.save(values.out!);
  await writeFile(join(values.out!, 'loss_curve.json'), `${JSON.stringify({ synthetic: true, notice: SYNTHETIC_NOTICE, curve })}\n`);
  console.log(`saved model, tokenizer and loss curve to ${values.out}`);
  return 0;
}

/** A terminal plot of the training loss (40 rows of text would be noise; 12 rows x 60 columns reads well). */
function plot(curve: { step: number; loss: number }[]): string {
  const rows = 12, cols = 60;
  if (curve.length === 0) return '(no steps)';
  const buckets = Array.from({ length: Math.min(cols, curve.length) }, (_, c) => {
    const from = Math.floor((c * curve.length) / Math.min(cols, curve.length));
    const to = Math.floor(((c + 1) * curve.length) / Math.min(cols, curve.length));
    const part = curve.slice(from, Math.max(to, from + 1));
    return part.reduce((a, p) => a + p.loss, 0) / part.length;
  });
  const hi = Math.max(...buckets), lo = Math.min(...buckets);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const level = hi - ((hi - lo) * r) / (rows - 1);
    const label = level.toFixed(2).padStart(6);
    lines.push(`${label} |${buckets.map((v) => (Math.abs(v - level) <= (hi - lo) / (2 * (rows - 1)) ? '*' : ' ')).join('')}`);
  }
  lines.push(`${' '.repeat(7)}+${'-'.repeat(buckets.length)}`);
  lines.push(`${' '.repeat(8)}step 1${' '.repeat(Math.max(1, buckets.length - 12))}step ${curve.at(-1)!.step}`);
  return `training loss\n${lines.join('\n')}`;
}
