// `minielm run`: the whole MiniELM pipeline on a judged relevance table (Home Depot by default).
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPipeline, tableWorld, PIPELINE_PRESETS } from '../pipeline.ts';
import { runPipelineCommand } from './pipeline-command.ts';
import { native } from '../native.ts';
import { invalidArgument } from '../errors.ts';

const SHARED = resolve(fileURLToPath(new URL('../../../shared/data/', import.meta.url)));

export const help = `Usage: minielm run [options]

Runs the whole MiniELM pipeline on a judged relevance table: Q2Q pairs (queries sharing >= k relevant
products), a BPE tokenizer, SFT of a teacher and a student, reverse-KL distillation, online DPO against
the embedded BM25 over the table's products with embedded simulated users, and the evaluation report.
Re-running the same command resumes every stage; Ctrl-C saves and exits.

Options:
  --data NAME|FILE         homedepot (default: ../shared/data/homedepot/train.csv) or a CSV/JSONL file
  --table-preset NAME      column/label preset of the file (default homedepot)
  --relevance-model DIR    learned M1 scorer for unjudged pairs ("minielm relevance train");
                           without it the lexical-overlap proxy is used
  --preset NAME            model/steps preset: homedepot (default) | demo | ci
  --k N                    minimum shared relevant products for a Q2Q pair (default 2)
  --out DIR                run folder (default runs/homedepot)
  --seed N                 (default 1)
  --threads N              native threads (default: all cores)
  --base DIR               start from a pretrained Hugging Face GPT-2 folder (with its tokenizer): no BPE
                           training, no pretraining; teacher and student start from it
  --base-student DIR       a second, smaller GPT-2 folder for the student (same tokenizer)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    data: { type: 'string', default: 'homedepot' }, 'table-preset': { type: 'string', default: 'homedepot' }, 'relevance-model': { type: 'string' },
    preset: { type: 'string', default: 'homedepot' }, k: { type: 'string', default: '2' }, out: { type: 'string', default: join('runs', 'homedepot') },
    seed: { type: 'string', default: '1' }, threads: { type: 'string' }, base: { type: 'string' }, 'base-student': { type: 'string' },
  } });
  const preset = PIPELINE_PRESETS[values.preset as keyof typeof PIPELINE_PRESETS];
  if (!preset) throw invalidArgument(`--preset must be one of ${Object.keys(PIPELINE_PRESETS).join(', ')}, got "${values.preset}"`);
  const seed = Number(values.seed), k = Number(values.k);
  if (!Number.isInteger(seed) || seed < 0) throw invalidArgument(`--seed must be a non-negative integer, got "${values.seed}"`);
  if (!Number.isInteger(k) || k < 1) throw invalidArgument(`--k must be a positive integer, got "${values.k}"`);
  if (values.threads) {
    const t = Number(values.threads);
    if (!Number.isInteger(t) || t < 1) throw invalidArgument(`--threads must be a positive integer, got "${values.threads}"`);
    native.setNumThreads(t);
  }
  const path = values.data === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : values.data!;
  return runPipelineCommand(async (signal) => {
    const world = await tableWorld({ path, preset: values['table-preset'], seed, relevanceModel: values['relevance-model'], k, log: (l) => console.log(l) });
    const base = values.base ? { teacher: values.base, ...(values['base-student'] ? { student: values['base-student'] } : {}) } : undefined;
    if (!base && values['base-student']) throw invalidArgument('--base-student needs --base (the teacher folder, whose tokenizer both share)');
    return runPipeline({ out: values.out!, preset, seed, command: `minielm run ${argv.join(' ')}`.trim(), signal, base }, world);
  });
}
