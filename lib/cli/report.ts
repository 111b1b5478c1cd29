// `minielm report --run DIR`: re-renders a run's report (Markdown + SVG) from its report.json.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeReport, reportMarkdown, type PipelineReport } from '../eval/report.ts';
import { MinielmError, invalidArgument } from '../errors.ts';

export const help = `Usage: minielm report --run DIR

Re-renders DIR/report/report.md and reward_curve.svg from DIR/report/report.json (written by
"minielm demo" and "minielm run") and prints the Markdown.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { run: { type: 'string' } } });
  if (!values.run) throw invalidArgument('--run DIR is required');
  const file = join(values.run, 'report', 'report.json');
  let report: PipelineReport;
  try {
    report = JSON.parse(await readFile(file, 'utf8')) as PipelineReport;
  } catch (err) {
    throw new MinielmError('MINIELM_NOT_FOUND', `${file}: cannot read a report (${(err as Error).message}); run "minielm demo" or "minielm run" first`);
  }
  await writeReport(join(values.run, 'report'), report);
  console.log(reportMarkdown(report));
  return 0;
}
