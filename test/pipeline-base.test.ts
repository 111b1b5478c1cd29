// `minielm run --base DIR`: the pipeline starts teacher and student from a user's pretrained GPT-2 folder
// in the Hugging Face layout (transformer.* tensor names, tokenizer files beside the weights): no BPE
// training, no pretraining, the models keep the base architecture.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipeline, syntheticWorld, PIPELINE_PRESETS } from '../lib/pipeline.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { Model } from '../lib/model/model.ts';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors.ts';
import type { PipelineReport } from '../lib/eval/report.ts';

// Saves `model` as transformers' GPT2LMHeadModel would: "transformer." prefixes, the tokenizer beside it.
async function writeHfFolder(dir: string, model: Model, save: (d: string) => Promise<void>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(dir);
  const file = await readSafetensors(join(dir, 'model.safetensors'));
  await writeSafetensors(join(dir, 'model.safetensors'), [...file.tensors].map(([name, t]) => ({ name: `transformer.${name}`, shape: t.shape, data: t.data })), { format: 'pt' });
  await save(dir);
}

test('run --base starts teacher and student from HF GPT-2 folders and skips tokenizer training and pretraining', async () => {
  const root = await mkdtemp(join(tmpdir(), 'minielm-base-'));
  try {
    const preset = PIPELINE_PRESETS.ci;
    const world = await syntheticWorld(preset, 1);
    const tok = await trainTokenizer([...world.train.map((p) => p.query), ...world.tokenizerTexts], { vocabSize: 420 });
    const teacher = await Model.create({ vocab_size: tok.vocabSize, n_ctx: 40, n_layer: 2, n_head: 2, n_embd: 40 }, { seed: 7 });
    const student = await Model.create({ vocab_size: tok.vocabSize, n_ctx: 40, n_layer: 1, n_head: 2, n_embd: 24 }, { seed: 8 });
    await writeHfFolder(join(root, 'gpt2-teacher'), teacher, (d) => tok.save(d));
    await writeHfFolder(join(root, 'gpt2-student'), student, (d) => tok.save(d));
    const out = join(root, 'run');
    const report: PipelineReport = await runPipeline({ out, preset, seed: 1, command: 'test', progress: false, log: () => {}, base: { teacher: join(root, 'gpt2-teacher'), student: join(root, 'gpt2-student') } }, world);
    const names = report.stages.map((s) => s.name);
    assert.ok(names.includes("tokenizer: the base model's"), names.join(', '));
    assert.not.ok(names.some((n) => n.startsWith('pretrain')), 'no pretraining stage');
    // The trained models keep the base shapes (not the preset's) and the base tokenizer.
    const t = JSON.parse(await readFile(join(out, 'teacher', 'best', 'config.json'), 'utf8')) as Record<string, number>;
    const s = JSON.parse(await readFile(join(out, 'student', 'best', 'config.json'), 'utf8')) as Record<string, number>;
    assert.equal([t.n_layer, t.n_embd, s.n_layer, s.n_embd], [2, 40, 1, 24]);
    assert.is(t.vocab_size, tok.vocabSize);
    // SFT loaded the base folders (the start record names them).
    for (const [stage, dir] of [['teacher', 'gpt2-teacher'], ['student', 'gpt2-student']]) {
      const log = (await readFile(join(out, stage, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.is(log.find((r) => r.event === 'start')?.init, join(root, dir));
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
