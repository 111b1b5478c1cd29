// `minielm demo --preset ci` runs the whole pipeline end to end and writes the report (Markdown, JSON, SVG).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSyntheticPipeline, PIPELINE_PRESETS } from '../lib/pipeline.ts';
import type { PipelineReport } from '../lib/eval/report.ts';

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
    assert.equal(report.stages.map((s) => s.name.split(':')[0]), ['data', 'tokenizer', 'sft', 'sft', 'distill', 'online', 'evaluation']);
    const sft = report.offline.find((o) => o.model === 'student (SFT)')!.metrics;
    const vanilla = report.offline.find((o) => o.model === 'student (vanilla)')!.metrics;
    assert.ok(sft.crossEntropy < vanilla.crossEntropy, `SFT lowers the test cross-entropy (${vanilla.crossEntropy} -> ${sft.crossEntropy})`);
    const md = await readFile(join(out, 'report', 'report.md'), 'utf8');
    assert.match(md, /SYNTHETIC DATA/);
    assert.match(md, /Table 2/);
    assert.match(await readFile(join(out, 'report', 'reward_curve.svg'), 'utf8'), /^<svg/);
    // A second run resumes every stage instead of training again.
    const again = await runSyntheticPipeline({ out, preset: PIPELINE_PRESETS.ci, seed: 1, command: 'test', progress: false, log: () => undefined });
    const sftAgain = again.offline.find((o) => o.model === 'student (SFT)')!.metrics;
    assert.is(sftAgain.crossEntropy, sft.crossEntropy);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test.run();
