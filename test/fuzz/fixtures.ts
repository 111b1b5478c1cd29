// What the API properties run against: a tiny GPT-2 (each call well under a millisecond), its checkpoint
// files, a byte-level BPE tokenizer with a handful of merges, and a rewriter folder built from both.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, type ModelConfig } from '../../lib/model/model.ts';
import { buildByteLevelBpe } from '../../lib/tokenizer/train.ts';
import { Tokenizer, minielmTokenizerConfig } from '../../lib/tokenizer/tokenizer.ts';
import type { TokenizerConfigJson, TokenizerJson } from '../../lib/tokenizer/tokenizer-json.ts';

/** The model every engine property uses: 16 tokens, 8 positions, one layer. */
export const TINY: ModelConfig = { vocab_size: 16, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };

let root: Promise<string> | null = null;

/** A scratch folder for this process, removed by cleanupFixtures(). */
export function scratch(): Promise<string> {
  root ??= mkdtemp(join(tmpdir(), 'minielm-fuzz-'));
  return root;
}

export async function cleanupFixtures(): Promise<void> {
  for (const m of models.values()) await (await m).dispose();
  models.clear();
  if (root) await rm(await root, { recursive: true, force: true });
  root = null;
}

const models = new Map<string, Promise<Model>>();

/** A shared model for `key` (created once; properties that train it only move its weights). */
export function sharedModel(key: string, config: ModelConfig = TINY, seed = 1): Promise<Model> {
  let m = models.get(key);
  if (!m) {
    m = Model.create(config, { seed });
    models.set(key, m);
  }
  return m;
}

export interface CheckpointFiles {
  config: string;
  weights: Uint8Array;
  trainingState: Uint8Array;
}

const checkpoints = new Map<string, Promise<CheckpointFiles>>();

/** config.json, model.safetensors and training_state.safetensors of a freshly created `config` (after one step). */
export function checkpointFiles(config: ModelConfig = TINY): Promise<CheckpointFiles> {
  const key = JSON.stringify(config);
  let c = checkpoints.get(key);
  if (!c) {
    c = (async () => {
      const dir = join(await scratch(), `checkpoint-${checkpoints.size}`);
      const m = await Model.create(config, { seed: 3 });
      const n = Math.min(4, config.n_ctx);
      await m.trainStep({ batch: 1, seq: n, tokens: Array.from({ length: n }, (_, i) => i % config.vocab_size), targets: Array.from({ length: n }, (_, i) => (i + 1) % config.vocab_size) }, { lr: 1e-3 });
      await m.save(dir, { trainingState: true });
      await m.dispose();
      return {
        config: await readFile(join(dir, 'config.json'), 'utf8'),
        weights: new Uint8Array(await readFile(join(dir, 'model.safetensors'))),
        trainingState: new Uint8Array(await readFile(join(dir, 'training_state.safetensors'))),
      };
    })();
    checkpoints.set(key, c);
  }
  return c;
}

/** A byte-level BPE over the 256 bytes with a few merges (about 270 tokens). */
export function tinyTokenizerFiles(): { tokenizerJson: TokenizerJson; config: TokenizerConfigJson } {
  const merges = ['d r', 'dr i', 'dri l', 'Ġ d', 'Ġd r', 'l a', 'la m', 'lam p', 'Ġ l', 'Ġl a', 'r e', 'Ġ r', 'e d', 's h', 'o e'];
  return { tokenizerJson: buildByteLevelBpe(merges, 300).tokenizerJson, config: minielmTokenizerConfig() };
}

let tokenizer: Tokenizer | null = null;
export function tinyTokenizer(): Tokenizer {
  if (!tokenizer) {
    const { tokenizerJson, config } = tinyTokenizerFiles();
    tokenizer = Tokenizer.fromJson(tokenizerJson, config, 'fuzz tokenizer');
  }
  return tokenizer;
}

let rewriterDir: Promise<string> | null = null;

/** A folder Rewriter.load reads: an untrained tiny model over the tiny tokenizer (rewrites are noise, which is enough). */
export function rewriterFolder(): Promise<string> {
  rewriterDir ??= (async () => {
    const dir = join(await scratch(), 'rewriter');
    const t = tinyTokenizer();
    const m = await Model.create({ vocab_size: t.vocabSize, n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 8 }, { seed: 5 });
    await m.save(dir);
    await m.dispose();
    await t.save(dir);
    return dir;
  })();
  return rewriterDir;
}

/** Titles of the small catalog the expand and HTTP properties retrieve from. */
export const CATALOG = [
  { id: 'p1', title: 'red drill driver' },
  { id: 'p2', title: 'cordless drill' },
  { id: 'p3', title: 'desk lamp shade' },
  { id: 'p4', title: 'red shoe' },
  { id: 'p5', title: 'lamp bulb' },
];
