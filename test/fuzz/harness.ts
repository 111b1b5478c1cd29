// The API fuzzing harness: runs a fast-check property over one public entry and sorts every generated input's
// outcome into "answered" (a result, or a MinielmError with a known code) or "failed" (any other throw, an
// unknown code, no answer within the time limit, an uncaught exception or unhandled rejection while it ran).
// Failures are counted, not stopped at, so a run says how many inputs of each kind of bug it met; the first
// failing input is then shrunk by fast-check (same seed) so the report names the smallest input that fails.
// FUZZ_TRACE=1 prints every input and how long it took (to find a slow or hanging one); with --entry, --seed and
// --runs, run-js.ts replays a run input for input.
import fc from 'fast-check';
import { Worker } from 'node:worker_threads';
import { MinielmError, type MinielmErrorCode } from '../../lib/errors.ts';

/** Every code lib/errors.ts declares: an error with any other code is a failure. */
export const KNOWN_CODES: readonly MinielmErrorCode[] = [
  'MINIELM_INVALID_ARGUMENT', 'MINIELM_NOT_FOUND', 'MINIELM_BAD_FILE', 'MINIELM_CHECKPOINT', 'MINIELM_NON_FINITE', 'MINIELM_ABORTED',
  'MINIELM_BUSY', 'MINIELM_NATIVE', 'MINIELM_OUT_OF_MEMORY', 'MINIELM_OVERLOADED', 'MINIELM_UNREACHABLE', 'MINIELM_TIMEOUT', 'MINIELM_JUDGE',
];

/**
 * Failures owned by the checkpoint rewrite of lib/model/model.ts and lib/model/safetensors.ts (issue 13), which
 * this harness may not fix. Each is matched by the file of the first lib/ frame of the error and its message,
 * counted apart from new failures, and has an explicit failing regression test in test/api-fuzz.test.ts. Delete
 * an entry once its test passes: a bug that comes back then fails the fuzz run again.
 */
// Signatures of known bugs in files another owner was changing, counted apart while they were open. All were
// fixed (their regression tests are in test/api-fuzz.test.ts); a new entry goes here with its failing test.
export const LEAD_OWNED: readonly { id: string; file: string; message: RegExp; test: string; entries?: readonly string[] }[] = [];

/**
 * Thrown by a property instead of calling the entry (or after isolating the call) when the input meets a known
 * bug that takes the whole process down: a lead-owned one in model.ts / safetensors.ts that hangs or exhausts
 * the heap, or a third-party one (a dependency's decoder that loops). Counted as known, not as new.
 */
export class KnownBug extends Error {
  readonly id: string;
  readonly owner: 'lead' | 'third-party';
  constructor(owner: 'lead' | 'third-party', id: string, message: string) {
    super(message);
    this.owner = owner;
    this.id = id;
  }
}

export interface Failure {
  /** Error class, message with numbers blanked, and the first lib/ frame: one line per kind of bug. */
  signature: string;
  count: number;
  /** The first input that failed this way (fast-check's printout, truncated). */
  example: string;
  /** Its error: class, message and the top of the stack. */
  error: string;
  /** Set when the failure is a known one: "lead:<id>" (LEAD_OWNED, KnownBug('lead')) or "third-party:<id>". */
  known?: string;
}

export interface FuzzResult {
  entry: string;
  /** Inputs tried. */
  runs: number;
  /** Inputs that failed in a way no LEAD_OWNED entry explains. */
  failures: number;
  /** Inputs that failed in a known way (LEAD_OWNED signatures, KnownBug throws): not new, not hidden either. */
  known: number;
  ms: number;
  seed: number;
  /** How the inputs were answered: "ok" or the MinielmError code, with counts. */
  outcomes: Record<string, number>;
  /** The most frequent refusals (code and message with numbers and quoted text blanked), with counts. */
  refusals: Record<string, number>;
  kinds: Failure[];
  /** The smallest input fast-check found for the first new failure. */
  shrunk?: string;
  /** 'ok', or what went wrong when a valid call was made after the property. */
  sanity: string;
}

export interface PropertySpec<T> {
  entry: string;
  arbitrary: fc.Arbitrary<T>;
  /** Calls the entry with one generated input. */
  call(input: T): Promise<unknown> | unknown;
  /** Codes this entry may answer with (default: every known code). */
  codes?: readonly MinielmErrorCode[];
  /** Checks a successful answer; returns what is wrong with it, if anything. */
  check?(value: unknown, input: T): string | undefined;
  /** A valid call that must still work after the property (the process and the object stay usable). */
  sanity(): Promise<void>;
  /** Per-input answer time limit (default 20 s): past it the input counts as a hang. */
  timeoutMs?: number;
  /** Splits the "ok" outcomes by what they answered (e.g. the HTTP status): "ok <label>". */
  label?(value: unknown): string;
  /** Runs after every input (e.g. closing what a successful call opened). */
  cleanup?(value: unknown, input: T): Promise<void> | void;
}

export interface RunOptions {
  runs: number;
  seed?: number;
  /** Stop generating after this many ms (the inputs tried so far are reported). */
  timeLimitMs?: number;
  /** Shrink the first new failure to a smallest input (default true). */
  shrink?: boolean;
}

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'code'; code: string; message: string } | { kind: 'failed'; err: unknown; hang?: boolean };

function firstLibFrame(err: unknown): string {
  const stack = err instanceof Error ? (err.stack ?? '') : '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /(lib\/[\w/.-]+\.ts):(\d+)/.exec(line);
    if (m) return `${m[1]}:${m[2]}`;
  }
  return '(no lib/ frame)';
}

function errorName(err: unknown): string {
  if (err instanceof Error) return err.constructor?.name ?? err.name;
  return `non-Error ${typeof err}`;
}

function errorMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return '(unprintable)';
  }
}

// Deep enough to reach the lib/ frame below Node's own path checks and error formatting.
Error.stackTraceLimit = Math.max(Error.stackTraceLimit, 50);

export function signatureOf(err: unknown, hang = false): string {
  if (hang) return errorMessage(err);
  const code = err instanceof MinielmError ? ` [${err.code}]` : '';
  const msg = errorMessage(err).replace(/Received .*/, 'Received …').replace(/\d+(\.\d+)?(e[+-]?\d+)?/g, 'N').replace(/\s+/g, ' ').slice(0, 140);
  return `${errorName(err)}${code}: ${msg} @ ${firstLibFrame(err)}`;
}

function knownId(err: unknown, entry: string): string | undefined {
  if (err instanceof KnownBug) return `${err.owner}:${err.id}`;
  const frame = firstLibFrame(err).replace(/:\d+$/, '');
  const msg = errorMessage(err);
  const id = LEAD_OWNED.find((k) => (k.file === frame || (frame === '(no lib/ frame)' && k.entries?.includes(entry))) && k.message.test(msg))?.id;
  return id === undefined ? undefined : `lead:${id}`;
}

export function printable(value: unknown, max = 600): string {
  let s: string;
  try {
    s = fc.stringify(value);
  } catch {
    s = '(unprintable input)';
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
}

// Errors that escape every await while an input runs (a floating promise, an event handler) are that input's.
let strays: unknown[] = [];
let trapping = 0;
const onStray = (err: unknown): void => {
  strays.push(err);
};

function trapStrays(): () => void {
  if (trapping++ === 0) {
    process.on('uncaughtException', onStray);
    process.on('unhandledRejection', onStray);
  }
  return () => {
    if (--trapping === 0) {
      process.off('uncaughtException', onStray);
      process.off('unhandledRejection', onStray);
    }
  };
}

async function invoke<T>(spec: PropertySpec<T>, input: T, codes: ReadonlySet<string>): Promise<Outcome> {
  const limit = spec.timeoutMs ?? 20_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'failed', err: new Error(`hang: no answer within ${limit} ms`), hang: true }), limit);
  });
  const run = (async (): Promise<Outcome> => {
    try {
      const value = await spec.call(input);
      return { kind: 'ok', value };
    } catch (err) {
      if (err instanceof MinielmError && codes.has(err.code)) return { kind: 'code', code: err.code, message: err.message };
      return { kind: 'failed', err };
    }
  })();
  const outcome = await Promise.race([run, hang]);
  clearTimeout(timer);
  // Let a stray rejection of this input surface before the next one starts.
  await new Promise((r) => setImmediate(r));
  if (strays.length) {
    const err = strays[0];
    strays = [];
    return { kind: 'failed', err: Object.assign(new Error(`uncaught while the call ran: ${signatureOf(err)}`), { stack: err instanceof Error ? err.stack : undefined }) };
  }
  if (outcome.kind === 'ok') {
    const problem = spec.check?.(outcome.value, input);
    if (problem) return { kind: 'failed', err: new Error(`bad result: ${problem}`) };
    await spec.cleanup?.(outcome.value, input);
  }
  return outcome;
}

// A watchdog thread: when the main thread is stuck in synchronous code (an input that loops for ever), it
// says which entry and run, then aborts the process, so a hang is a reported failure, never a silent stall.
const watch = { beats: new Int32Array(new SharedArrayBuffer(8)), label: new Uint8Array(new SharedArrayBuffer(512)), worker: null as Worker | null };
const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const beats = new Int32Array(workerData.beats), label = new Uint8Array(workerData.label);
let last = -1, since = Date.now();
setInterval(() => {
  const now = Atomics.load(beats, 0);
  if (now !== last || Atomics.load(beats, 1) === 0) { last = now; since = Date.now(); return; }
  if (Date.now() - since > workerData.limitMs) {
    const text = Buffer.from(label).toString('utf8').replace(/\\0+$/, '');
    writeSync(2, '\\nFUZZ WATCHDOG: the main thread has been blocked for ' + (Date.now() - since) + ' ms in ' + text + '; aborting\\n');
    process.kill(process.pid, 'SIGABRT');
  }
}, 250);
`;

function watchdog(limitMs: number): void {
  if (watch.worker) return;
  watch.worker = new Worker(WATCHDOG, { eval: true, workerData: { beats: watch.beats.buffer, label: watch.label.buffer, limitMs } });
  watch.worker.unref();
}

function beat(label: string): void {
  const bytes = Buffer.from(label.slice(0, 500));
  watch.label.fill(0);
  watch.label.set(bytes.subarray(0, watch.label.length));
  Atomics.add(watch.beats, 0, 1);
  Atomics.store(watch.beats, 1, 1);
}

function idle(): void {
  Atomics.store(watch.beats, 1, 0);
}

/** Runs `spec` over `options.runs` generated inputs (or until the time limit) and reports what happened. */
export async function runProperty<T>(spec: PropertySpec<T>, options: RunOptions): Promise<FuzzResult> {
  const seed = options.seed ?? 1;
  const codes = new Set<string>(spec.codes ?? KNOWN_CODES);
  const result: FuzzResult = { entry: spec.entry, runs: 0, failures: 0, known: 0, ms: 0, seed, outcomes: {}, refusals: {}, kinds: [], sanity: 'ok' };
  const refusals = new Map<string, number>();
  const kinds = new Map<string, Failure>();
  const started = performance.now();
  // Synchronous work longer than this, or one input running longer than twice its own limit, is a hang.
  watchdog(Math.max(60_000, 2 * (spec.timeoutMs ?? 20_000)));
  const release = trapStrays();
  let newFailure = false;
  try {
    const plugins = options.timeLimitMs ? [fc.interruptAfterTimeLimit(options.timeLimitMs)] : [];
    await fc.check(
      fc.asyncProperty(spec.arbitrary, async (input) => {
        beat(`${spec.entry} run ${result.runs + 1} (seed ${seed}; replay: --entry '${spec.entry}' --seed ${seed} --runs ${result.runs + 1})`);
        if (process.env.FUZZ_TRACE) process.stderr.write(`${spec.entry} #${result.runs + 1}: ${printable(input, 4000)}\n`);
        const t0 = performance.now();
        const outcome = await invoke(spec, input, codes);
        if (process.env.FUZZ_TRACE) process.stderr.write(`  -> ${outcome.kind === 'code' ? outcome.code : outcome.kind} in ${(performance.now() - t0).toFixed(1)} ms\n`);
        result.runs++;
        beat(`${spec.entry}, generating input ${result.runs + 1} (seed ${seed})`);
        if (outcome.kind === 'failed') {
          const signature = signatureOf(outcome.err, outcome.hang);
          const known = outcome.hang ? undefined : knownId(outcome.err, spec.entry);
          if (known) result.known++;
          else {
            result.failures++;
            newFailure = true;
          }
          const seen = kinds.get(signature);
          if (seen) seen.count++;
          else {
            const stack = outcome.err instanceof Error ? (outcome.err.stack ?? '').split('\n').slice(0, 6).join('\n') : String(outcome.err);
            kinds.set(signature, { signature, count: 1, example: printable(input), error: stack, ...(known ? { known } : {}) });
          }
          result.outcomes.failed = (result.outcomes.failed ?? 0) + 1;
        } else {
          const key = outcome.kind === 'ok' ? (spec.label ? `ok ${spec.label(outcome.value)}` : 'ok') : outcome.code;
          result.outcomes[key] = (result.outcomes[key] ?? 0) + 1;
          if (outcome.kind === 'code') {
            const what = `${outcome.code}: ${outcome.message.replace(/"[^"]*"/g, '"…"').replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, 'N').slice(0, 100)}`;
            if (refusals.size < 2000 || refusals.has(what)) refusals.set(what, (refusals.get(what) ?? 0) + 1);
          }
        }
        return true;
      }),
      { numRuns: options.runs, seed, plugins },
    );
    result.ms = performance.now() - started;
    if (newFailure && options.shrink !== false) {
      // The same seed meets the same first failure; fast-check then shrinks it.
      const details = await fc.check(
        fc.asyncProperty(spec.arbitrary, async (input) => {
          beat(`${spec.entry} (shrinking)`);
          const outcome = await invoke(spec, input, codes);
          return outcome.kind !== 'failed' || (!outcome.hang && knownId(outcome.err, spec.entry) !== undefined);
        }),
        { numRuns: options.runs, seed, plugins: [fc.interruptAfterTimeLimit(60_000)] },
      );
      if (details.failed && details.counterexample) result.shrunk = printable((details.counterexample as unknown[])[0], 2000);
    }
    beat(`${spec.entry} (sanity check)`);
    try {
      await spec.sanity();
    } catch (err) {
      result.sanity = signatureOf(err);
    }
  } finally {
    idle();
    release();
  }
  result.kinds = [...kinds.values()].sort((a, b) => b.count - a.count);
  result.refusals = Object.fromEntries([...refusals].sort((a, b) => b[1] - a[1]).slice(0, 12));
  return result;
}

/** One line per entry, then one per kind of failure. */
export function formatResult(r: FuzzResult): string {
  const outcomes = Object.entries(r.outcomes).map(([k, v]) => `${k.replace('MINIELM_', '')} ${v}`).join(', ');
  const lines = [`${r.entry.padEnd(26)} ${String(r.runs).padStart(7)} inputs  ${String(r.failures).padStart(5)} failures  ${String(r.known).padStart(5)} known  ${(r.ms / 1000).toFixed(1).padStart(7)} s  sanity ${r.sanity}  (${outcomes})`];
  for (const k of r.kinds) {
    lines.push(`    ${k.known ? `[known ${k.known}] ` : ''}${k.count} x ${k.signature}`);
    lines.push(`      first input: ${k.example}`);
    if (!k.known) lines.push(`      ${k.error.split('\n').join('\n      ')}`);
  }
  if (r.shrunk) lines.push(`    shrunk to: ${r.shrunk}`);
  return lines.join('\n');
}

/** What a property function over one entry takes: the run count, and the seed and time limit. */
export type FuzzProperty = (runs: number, options?: Omit<RunOptions, 'runs'>) => Promise<FuzzResult>;
