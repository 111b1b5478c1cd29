// A progress line for long jobs: step, ETA and tokens/s, redrawn in place on a terminal and printed every
// `every` steps otherwise (CI logs stay readable).
export interface ProgressOptions {
  total: number;
  label: string;
  stream?: NodeJS.WriteStream;
  every?: number;
}

export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #stream: NodeJS.WriteStream;
  readonly #every: number;
  readonly #started = performance.now();
  #startStep = 0;
  #tokens = 0;
  #lastDraw = 0;

  constructor(options: ProgressOptions, startStep = 0) {
    this.#total = options.total;
    this.#label = options.label;
    this.#stream = options.stream ?? process.stderr;
    this.#every = options.every ?? 10;
    this.#startStep = startStep;
  }

  /** Reports step `step` (1-based count of steps done) that processed `tokens` tokens; `extra` is appended. */
  update(step: number, tokens: number, extra = ''): void {
    this.#tokens += tokens;
    const elapsed = (performance.now() - this.#started) / 1000;
    const done = step - this.#startStep;
    const rate = done > 0 ? elapsed / done : 0;
    const eta = rate * (this.#total - step);
    const tps = elapsed > 0 ? this.#tokens / elapsed : 0;
    const width = 24;
    const filled = Math.round((width * step) / Math.max(1, this.#total));
    const line = `${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${this.#total} | ETA ${formatSeconds(eta)} | ${Math.round(tps)} tok/s${extra ? ` | ${extra}` : ''}`;
    if (this.#stream.isTTY) {
      const now = performance.now();
      if (now - this.#lastDraw > 100 || step === this.#total) {
        this.#stream.write(`\r${line.slice(0, (this.#stream.columns ?? 120) - 1).padEnd(Math.min(120, (this.#stream.columns ?? 120) - 1))}`);
        this.#lastDraw = now;
      }
      if (step === this.#total) this.#stream.write('\n');
    } else if (step % this.#every === 0 || step === this.#total) {
      this.#stream.write(`${line}\n`);
    }
  }

  finish(message?: string): void {
    if (this.#stream.isTTY) this.#stream.write('\n');
    if (message) this.#stream.write(`${message}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}
