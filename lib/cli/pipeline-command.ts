// Shared by `minielm demo` and `minielm run`: Ctrl-C handling, the final report and the exit code.
import { reportMarkdown, type PipelineReport } from '../eval/report.ts';
import { interruptOnSignals } from '../train/run-state.ts';

/** Runs a pipeline job with Ctrl-C wired to its signal; prints the report, or how to resume. */
export async function runPipelineCommand(job: (signal: AbortSignal) => Promise<PipelineReport>): Promise<number> {
  const controller = new AbortController();
  const release = interruptOnSignals(controller);
  const started = performance.now();
  try {
    const report = await job(controller.signal);
    console.log(`\n${reportMarkdown(report)}\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return 0;
  } catch (err) {
    // The pipeline stops between stages with MINIELM_ABORTED after the interrupted stage saved its checkpoint.
    if ((err as { code?: string }).code !== 'MINIELM_ABORTED') throw err;
    console.log((err as Error).message);
    return 130;
  } finally {
    release();
  }
}
