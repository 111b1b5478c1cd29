// Leak check: many create / generate / dispose cycles of a tiny model, then Model.load / dispose and
// Rewriter.load / rewrite / close cycles, with RSS read after a warm-up and at the end (after global.gc()).
// Prints one JSON line with the numbers; exits 1 when a phase's RSS grew past the bound.
// Last, models dropped without dispose(): the garbage collector's finalizer must free their native memory.
//   node --expose-gc --import tsx test/helpers/leak-check.ts [--creates N] [--loads N] [--rewriters N] [--dropped N] [--bound-mb MB]
// test/leaks.test.ts runs it with reduced counts; `npm run check:leaks` with the full ones.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, type ModelConfig } from '../../lib/model/model.ts';
import { generate } from '../../lib/model/generate.ts';
import { trainTokenizer } from '../../lib/tokenizer/index.ts';
import { Rewriter } from '../../lib/serve/rewriter.ts';

function flag(name: string, fallback: number): number {
  const i = process.argv.lastIndexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const creates = flag('creates', 10_000);
const loads = flag('loads', 1_000);
const rewriters = flag('rewriters', 1_000);
const dropped = flag('dropped', 2_000);
const boundMb = flag('bound-mb', 64);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('leak-check needs node --expose-gc\n');
  process.exit(2);
}

const MB = 1024 * 1024;
async function settled(): Promise<NodeJS.MemoryUsage> {
  // Two rounds: finalizers run after the first collection and may free more native memory.
  for (let i = 0; i < 2; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage();
}

interface Phase {
  cycles: number;
  warmup: number;
  rssAfterWarmupMb: number;
  rssMidMb: number;
  rssEndMb: number;
  growthMb: number;
  /** V8 heap and external (ArrayBuffer, native-tracked) memory growth over the same span. */
  heapGrowthMb: number;
  externalGrowthMb: number;
  seconds: number;
}

async function phase(cycles: number, warmup: number, cycle: (i: number) => Promise<void>): Promise<Phase> {
  for (let i = 0; i < warmup; i++) await cycle(i);
  const before = await settled();
  const started = performance.now();
  let mid = before;
  for (let i = 0; i < cycles; i++) {
    await cycle(warmup + i);
    if (i === Math.floor(cycles / 2)) mid = await settled();
  }
  const after = await settled();
  const r = (x: number): number => Math.round((x / MB) * 10) / 10;
  return {
    cycles, warmup, rssAfterWarmupMb: r(before.rss), rssMidMb: r(mid.rss), rssEndMb: r(after.rss), growthMb: r(after.rss - before.rss),
    heapGrowthMb: r(after.heapUsed - before.heapUsed), externalGrowthMb: r(after.external - before.external), seconds: Math.round((performance.now() - started) / 100) / 10,
  };
}

const root = await mkdtemp(join(tmpdir(), 'minielm-leaks-'));
try {
  const tokenizer = await trainTokenizer(['cordless drill', 'wood screws', 'drill bits for metal', 'garden hose reel', 'led light bulbs'], { vocabSize: 300 });
  const config: ModelConfig = { vocab_size: tokenizer.vocabSize, n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 16 };
  const prompts = [[1, 2, 3], [4, 5]];

  const create = await phase(creates, Math.min(500, creates), async (i) => {
    const m = await Model.create(config, { seed: i });
    await generate(m, prompts, { maxNewTokens: 6, strategy: i % 2 ? 'sample' : 'greedy', seed: i, tokenLogprobs: true });
    await m.dispose();
  });

  const dir = join(root, 'model');
  const seedModel = await Model.create(config, { seed: 1 });
  await seedModel.save(dir, { extraFiles: (d) => tokenizer.save(d) });
  await seedModel.dispose();
  const load = await phase(loads, Math.min(100, loads), async () => {
    const m = await Model.load(dir);
    await m.dispose();
  });

  const rewriter = await phase(rewriters, Math.min(100, rewriters), async (i) => {
    const r = await Rewriter.load(dir, { maxNewTokens: 6 });
    await r.rewrite(`drill ${i % 7}`, { n: 2 });
    await r.close();
  });

  const drop = await phase(dropped, Math.min(100, dropped), async (i) => {
    const m = await Model.create(config, { seed: i });
    await m.forward({ tokens: [1, 2, 3], batch: 1, seq: 3 });
    if (i % 100 === 99) gc!();
  });

  const result = { boundMb, createGenerateDispose: create, loadDispose: load, rewriterLoadClose: rewriter, createDroppedUndisposed: drop };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const over = Object.entries({ create, load, rewriter, drop }).filter(([, p]) => p.growthMb >= boundMb);
  if (over.length) {
    process.stderr.write(`RSS grew by ${over.map(([k, p]) => `${p.growthMb} MB (${k})`).join(', ')}: at least ${boundMb} MB\n`);
    process.exitCode = 1;
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
