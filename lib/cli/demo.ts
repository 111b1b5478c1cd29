// `minielm demo`: the main job on embedded defaults. The whole MiniELM pipeline on the built-in SYNTHETIC
// catalog with the embedded BM25 retriever and embedded simulated users, ending with the report.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { runSyntheticPipeline, PIPELINE_PRESETS } from '../pipeline.ts';
import { runPipelineCommand } from './pipeline-command.ts';
import { native } from '../native.ts';
import { invalidArgument } from '../errors.ts';

export const help = `Usage: minielm demo [options]

Runs the whole MiniELM pipeline on the built-in SYNTHETIC catalog: Q2Q pairs, a BPE tokenizer, SFT of a
teacher and a student, reverse-KL distillation, online DPO against the embedded BM25 retriever and
embedded simulated users, then the evaluation report (Markdown, JSON and an SVG reward curve).
Re-running the same command resumes every stage where it stopped; Ctrl-C saves and exits.

Options:
  --preset NAME    demo (default, a few minutes on 2 cores) | ci (seconds, for tests)
  --out DIR        run folder (default runs/demo)
  --seed N         seed for data, models, sampling and users (default 1)
  --threads N      native threads (default: all cores)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { preset: { type: 'string', default: 'demo' }, out: { type: 'string', default: join('runs', 'demo') }, seed: { type: 'string', default: '1' }, threads: { type: 'string' } } });
  const preset = PIPELINE_PRESETS[values.preset as 'demo' | 'ci'];
  if (!preset) throw invalidArgument(`--preset must be demo or ci, got "${values.preset}"`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw invalidArgument(`--seed must be a non-negative integer, got "${values.seed}"`);
  if (values.threads) {
    const t = Number(values.threads);
    if (!Number.isInteger(t) || t < 1) throw invalidArgument(`--threads must be a positive integer, got "${values.threads}"`);
    native.setNumThreads(t);
  }
  return runPipelineCommand((signal) => runSyntheticPipeline({ out: values.out!, preset, seed, command: `minielm demo ${argv.join(' ')}`.trim(), signal }));
}
