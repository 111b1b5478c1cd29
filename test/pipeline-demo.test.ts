// `minielm demo --preset ci` runs the whole pipeline end to end and writes the report (Markdown, JSON, SVG).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSyntheticPipeline, PIPELINE_PRESETS } from '../lib/pipeline.ts';
import type { PipelineReport } from '../lib/eval/report.ts';

const STAGES = ['teacher', 'student', 'distilled', 'online'] as const;

/** Every file under `dir` (relative path -> size, mtime and content), to tell whether anything was rewritten. */
async function snapshot(dir: string): Promise<Map<string, { mtimeMs: number; data: string }>> {
  const out = new Map<string, { mtimeMs: number; data: string }>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path.slice(dir.length + 1), { mtimeMs: (await stat(path)).mtimeMs, data: (await readFile(path)).toString('base64') });
  }
  return out;
}

async function readLog(file: string): Promise<Record<string, unknown>[]> {
  return (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('the demo pipeline runs end to end on the ci preset and writes its report', async () => {
  const out = await mkdtemp(join(tmpdir(), 'minielm-demo-'));
  try {
    const lines: string[] = [];
    await runSyntheticPipeline({ out, preset: PIPELINE_PRESETS.ci, seed: 1, command: 'test', progress: false, log: (l) => lines.push(l) });
    const report = JSON.parse(await readFile(join(out, 'report', 'report.json'), 'utf8')) as PipelineReport;
    assert.ok(report.synthetic);
    assert.is(report.offline.length, 6);
    assert.is(report.online.length, 2);
    assert.is(report.coverage.length, 2);
    assert.equal(report.stages.map((s) => s.name.split(':')[0]), ['data', 'tokenizer', 'pretrain', 'pretrain', 'sft', 'sft', 'distill', 'online', 'evaluation (test split, read once)'.split(':')[0]]);
    const sft = report.offline.find((o) => o.model === 'student (SFT)')!.metrics;
    const vanilla = report.offline.find((o) => o.model === 'student (vanilla)')!.metrics;
    assert.ok(sft.crossEntropy < vanilla.crossEntropy, `SFT lowers the test cross-entropy (${vanilla.crossEntropy} -> ${sft.crossEntropy})`);
    const md = await readFile(join(out, 'report', 'report.md'), 'utf8');
    assert.match(md, /SYNTHETIC DATA/);
    assert.match(md, /Table 2/);
    assert.match(await readFile(join(out, 'report', 'reward_curve.svg'), 'utf8'), /^<svg/);
    // A second run resumes every stage instead of training again: each trainer logs one "resume" event
    // at its final step and nothing else (no training step, no evaluation), and no checkpoint, best model
    // or tokenizer file is rewritten.
    const logsBefore = new Map<string, Record<string, unknown>[]>();
    const filesBefore = new Map<string, Map<string, { mtimeMs: number; data: string }>>();
    for (const stage of STAGES) {
      logsBefore.set(stage, await readLog(join(out, stage, 'log.jsonl')));
      filesBefore.set(stage, await snapshot(join(out, stage)));
    }
    const tokenizerBefore = await snapshot(join(out, 'tokenizer'));
    const finalStep = { teacher: PIPELINE_PRESETS.ci.sftSteps, student: PIPELINE_PRESETS.ci.sftSteps, distilled: PIPELINE_PRESETS.ci.distillSteps, online: PIPELINE_PRESETS.ci.onlineIterations };
    const again = await runSyntheticPipeline({ out, preset: PIPELINE_PRESETS.ci, seed: 1, command: 'test', progress: false, log: () => undefined });
    for (const stage of STAGES) {
      const before = logsBefore.get(stage)!;
      assert.not.ok(before.some((r) => r.event === 'resume'), `${stage}: the first run did not resume`);
      const after = await readLog(join(out, stage, 'log.jsonl'));
      assert.equal(after.slice(0, before.length), before, `${stage}: the first run's log is kept as it was`);
      const added = after.slice(before.length);
      const summary = added.map((r) => (typeof r.event === 'string' ? `${r.event}@${r.step}` : `step ${r.step}${'loss' in r ? ' (trained)' : ''}`)).slice(0, 8).join(', ');
      assert.is(added.length, 1, `${stage}: the second run should log only its resume, it logged ${added.length} records: ${summary}`);
      assert.is(added[0].event, 'resume', `${stage}: a resume event`);
      assert.is(added[0].step, finalStep[stage], `${stage}: resumed at the final step`);
      const filesAfter = await snapshot(join(out, stage));
      const mine = [...filesBefore.get(stage)!].filter(([f]) => f !== 'log.jsonl');
      assert.ok(mine.some(([f]) => f.startsWith('checkpoint/')), `${stage}: has a checkpoint`);
      for (const [f, v] of mine) {
        const w = filesAfter.get(f);
        assert.ok(w, `${stage}/${f} still exists`);
        assert.ok(w.mtimeMs === v.mtimeMs && w.data === v.data, `${stage}/${f} was rewritten by the second run`);
      }
      assert.equal([...filesAfter.keys()].sort(), [...filesBefore.get(stage)!.keys()].sort(), `${stage}: no file added or removed`);
    }
    assert.equal(await snapshot(join(out, 'tokenizer')), tokenizerBefore, 'the tokenizer is loaded, not retrained');
    const sftAgain = again.offline.find((o) => o.model === 'student (SFT)')!.metrics;
    assert.is(sftAgain.crossEntropy, sft.crossEntropy);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test.run();
