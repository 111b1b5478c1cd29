// The process test/crash-safety.test.ts SIGKILLs at random points while it saves state. It sets up, prints
// "ready", waits for "go" on stdin (so the next trial's start-up overlaps the current one), then resumes
// whatever state it finds ("resumed <kind> <version>") and saves new versions forever, printing
// "start <kind> <v>" before and "done <kind> <v>" after each save. A version's reference copy (written
// by the same code to a folder of its own) is complete before "start", so the parent can compare bytes.
//   node --import tsx test/helpers/crash-child.ts checkpoint|online|misc <root> <trial>
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Model, type ModelConfig, type OptimizerOptions } from '../../lib/model/model.ts';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { saveCheckpoint, hasCheckpoint, loadTrainerState, JsonlLog } from '../../lib/train/run-state.ts';
import { LearnedRelevanceScorer } from '../../lib/rewards/learned.ts';
import { generateProfiles, loadProfiles, saveProfiles } from '../../lib/users/profiles.ts';
import { parseJsonLines, resolveDir, writeFileAtomic } from '../../lib/util/atomic.ts';

export const CHECKPOINT_CONFIG: ModelConfig = { vocab_size: 96, n_ctx: 16, n_layer: 1, n_head: 2, n_embd: 16 };
export const CHECKPOINT_SEED = 7;
export const CHECKPOINT_OPTIMIZER: OptimizerOptions = { lr: 1e-2, warmupSteps: 0, schedule: 'constant' };

/** The training batch of version `v` of the checkpoint chain: a pure function of v. */
export function checkpointBatch(v: number): { tokens: Int32Array; targets: Int32Array; batch: number; seq: number } {
  const batch = 2, seq = 8;
  let s = (v * 2654435761) >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % CHECKPOINT_CONFIG.vocab_size;
  };
  const tokens = Int32Array.from({ length: batch * seq }, next);
  const targets = Int32Array.from({ length: batch * seq }, (_, i) => tokens[(i + 1) % tokens.length]);
  return { tokens, targets, batch, seq };
}

/** Tokenizer version `v`: the fixture's vocabulary with a config that names v (so a mixed set shows). */
export function tokenizerVersion(base: Tokenizer, v: number): Tokenizer {
  return Tokenizer.fromJson(base.tokenizerJson, { ...base.config, minielm_crash_version: v }, `tokenizer v${v}`);
}

/** The report-like file of version `v`: a few MB, so a torn write would be easy to see. */
export function atomicPayload(v: number): string {
  return `${JSON.stringify({ version: v, body: `${v % 10}`.repeat(500_000 + (v % 7) * 500_000) })}\n`;
}

export const PROFILE_COUNT = 8;
export const SCORER_CONFIG = { n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 16, score_head: true };

/** The JSONL record of step `k`; every tenth one is large (a kill can cut a long append short). */
export function logRecord(k: number): Record<string, unknown> {
  return { step: k, loss: 1 / k, pad: k % 10 === 0 ? 'x'.repeat(400_000) : '' };
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function checkpointMode(root: string): Promise<void> {
  const base = await Tokenizer.load(join(root, 'fixture', 'tokenizer'));
  await ready();
  const ck = join(root, 'checkpoint');
  let model: Model;
  let v = 0;
  if (await hasCheckpoint(ck)) {
    const state = await loadTrainerState(ck);
    model = await Model.load(ck, { trainingState: true });
    v = Number(state.version);
    if (model.step !== v) throw new Error(`resumed a checkpoint of version ${v} whose model is at step ${model.step}`);
  } else model = await Model.create(CHECKPOINT_CONFIG, { seed: CHECKPOINT_SEED });
  say(`resumed checkpoint ${v}`);
  for (;;) {
    v++;
    await model.trainStep(checkpointBatch(v), CHECKPOINT_OPTIMIZER);
    const tok = tokenizerVersion(base, v);
    const state = { step: model.step, version: v };
    await saveCheckpoint(join(root, 'refs', String(v)), model, state, (d) => tok.save(d));
    say(`start checkpoint ${v}`);
    await saveCheckpoint(ck, model, state, (d) => tok.save(d));
    say(`done checkpoint ${v}`);
  }
}

async function onlineMode(root: string): Promise<void> {
  const { onlineWorld, onlineOptions } = await import('./crash-online.ts');
  const world = await onlineWorld(root);
  await ready();
  const r = await (await import('../../lib/train/online.ts')).trainOnline(onlineOptions(root, world, join(root, 'online')));
  say(`finished online ${r.iterations}`);
  process.exit(0);
}

// Every other state file at once, each in its own loop, so one kill lands somewhere in each of them.
async function miscMode(root: string, trial: number): Promise<void> {
  const base = await Tokenizer.load(join(root, 'fixture', 'tokenizer'));
  await ready();
  await Promise.all([scorerLoop(root, base), tokenizerLoop(root, base), profilesLoop(root), jsonlLoop(root, trial), atomicFileLoop(root)]);
}

async function scorerLoop(root: string, base: Tokenizer): Promise<void> {
  const dir = join(root, 'scorer');
  let v = 0;
  let model: Model;
  try {
    // One resolution for the scorer and its relevance.json: mid-swap, <dir> itself may hold the older set.
    const from = await resolveDir(dir);
    const s = await LearnedRelevanceScorer.load(from);
    v = Number((JSON.parse(await readFile(join(from, 'relevance.json'), 'utf8')) as { version: number }).version);
    model = s.model;
  } catch (err) {
    if ((err as { code?: string }).code !== 'MINIELM_NOT_FOUND') throw err;
    model = await Model.create({ ...SCORER_CONFIG, vocab_size: base.vocabSize }, { seed: 3 });
  }
  say(`resumed scorer ${v}`);
  for (;;) {
    v++;
    model.writeTensor('score.weight', model.readTensor('score.weight').map((x, i) => x + (i === 0 ? v : 0)));
    const scorer = new LearnedRelevanceScorer(model, base, { nCtx: 24, maxQueryTokens: 8 });
    await scorer.save(join(root, 'refs-scorer', String(v)), { version: v });
    say(`start scorer ${v}`);
    await scorer.save(dir, { version: v });
    say(`done scorer ${v}`);
  }
}

async function tokenizerLoop(root: string, base: Tokenizer): Promise<void> {
  // The folder also holds a model (saved by the parent): Tokenizer.save must keep it.
  const dir = join(root, 'tokenizer');
  let v = Number((await Tokenizer.load(dir)).config.minielm_crash_version ?? 0);
  say(`resumed tokenizer ${v}`);
  for (;;) {
    v++;
    const tok = tokenizerVersion(base, v);
    await tok.save(join(root, 'refs-tokenizer', String(v)));
    say(`start tokenizer ${v}`);
    await tok.save(dir);
    say(`done tokenizer ${v}`);
  }
}

async function profilesLoop(root: string): Promise<void> {
  const file = join(root, 'profiles.json');
  let v = 0;
  try {
    v = Number(loadProfiles(file)[0].id.split('-')[1]);
  } catch (err) {
    if ((err as { code?: string }).code !== 'MINIELM_NOT_FOUND') throw err;
  }
  say(`resumed profiles ${v}`);
  for (;;) {
    v++;
    say(`start profiles ${v}`);
    saveProfiles(file, profilesVersion(v));
    say(`done profiles ${v}`);
    // saveProfiles is synchronous (fsync included): leave the event loop to the other savers.
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Profiles of version `v` (ids "v-<v>-<i>" so the version reads back). */
export function profilesVersion(v: number): ReturnType<typeof generateProfiles> {
  return generateProfiles(PROFILE_COUNT, v).map((p, i) => ({ ...p, id: `v-${v}-${i}` }));
}

async function jsonlLoop(root: string, trial: number): Promise<void> {
  const file = join(root, 'log.jsonl');
  const log = new JsonlLog(file);
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    await writeFile(file, '');
  }
  const steps = parseJsonLines<{ step: number }>(text).records.map((r) => r.step);
  let k = steps.length ? Math.max(...steps) : 0;
  // Half the trials resume like a trainer (truncateAfter), half just append: either way a torn tail goes.
  if (trial % 2 === 0) await log.truncateAfter(k);
  say(`resumed jsonl ${k}`);
  for (;;) {
    k++;
    say(`start jsonl ${k}`);
    await log.write(logRecord(k));
    say(`done jsonl ${k}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

async function atomicFileLoop(root: string): Promise<void> {
  const file = join(root, 'report.json');
  let v = 0;
  try {
    v = (JSON.parse(await readFile(file, 'utf8')) as { version: number }).version;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  say(`resumed report ${v}`);
  for (;;) {
    v++;
    say(`start report ${v}`);
    await writeFileAtomic(file, atomicPayload(v));
    say(`done report ${v}`);
  }
}

function ready(): Promise<void> {
  say('ready');
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      if (line.trim() === 'go') {
        rl.close();
        resolve();
      }
    });
  });
}

const [mode, root, trial] = process.argv.slice(2);
// Only when run as a script: the suite imports the version functions above.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const run = mode === 'checkpoint' ? checkpointMode(root) : mode === 'online' ? onlineMode(root) : mode === 'misc' ? miscMode(root, Number(trial ?? 0)) : Promise.reject(new Error(`unknown mode ${mode}`));
  run.catch((err: unknown) => {
    process.stderr.write(`crash-child ${mode}: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
