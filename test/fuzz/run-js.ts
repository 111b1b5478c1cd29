// The API fuzzing run: every property of test/fuzz/index.ts with the full input count, each in a child
// process of its own (a crash or an abort by the watchdog is reported for that entry, the others still run).
// Prints, per entry, inputs tried, failures and time, and writes build-fuzz/js-summary.json.
//   node --import tsx test/fuzz/run-js.ts [--runs N] [--seconds S] [--entry a,b] [--seed N] [--out FILE]
// --runs N: inputs per entry (default 10000). --seconds S: at most S seconds of generating per entry (with
// --runs, whichever comes first; alone, as many inputs as fit). --entry: only entries whose name contains one
// of the comma-separated parts. Exit status 1 when any entry has a new failure, crashed or failed its sanity check.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatResult, type FuzzResult } from './harness.ts';
import { PROPERTIES } from './index.ts';
import { cleanupFixtures } from './fixtures.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function parseArgs(argv: string[]): { runs?: number; seconds?: number; entries: string[]; seed: number; out: string; child?: string; result?: string } {
  const out: ReturnType<typeof parseArgs> = { entries: [], seed: 1, out: join(root, 'build-fuzz', 'js-summary.json') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const count = (name: string): number => {
      const n = Number(value());
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
      return n;
    };
    if (flag === '--runs') out.runs = Math.floor(count('--runs'));
    else if (flag === '--seconds') out.seconds = count('--seconds');
    else if (flag === '--entry') out.entries.push(...value().split(',').filter(Boolean));
    else if (flag === '--seed') out.seed = Math.floor(count('--seed'));
    else if (flag === '--out') out.out = resolve(value());
    else if (flag === '--child') out.child = value();
    else if (flag === '--result') out.result = value();
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: node --import tsx test/fuzz/run-js.ts [--runs N] [--seconds S] [--entry a,b] [--seed N] [--out FILE]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${flag} (try --help)`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const runs = args.runs ?? (args.seconds ? Number.MAX_SAFE_INTEGER : 10_000);

if (args.child) {
  // One entry, in this process: the parent reads the result file.
  const entry = PROPERTIES.find((p) => p.entry === args.child);
  if (!entry) throw new Error(`no entry ${args.child}`);
  const result = await entry.run(runs, { seed: args.seed, ...(args.seconds ? { timeLimitMs: args.seconds * 1000 } : {}) });
  await cleanupFixtures();
  process.stdout.write(`${formatResult(result)}\n`);
  if (args.result) await writeFile(args.result, JSON.stringify(result));
  process.exit(0);
}

interface EntrySummary extends Partial<FuzzResult> {
  entry: string;
  status: 'ok' | 'failures' | 'sanity' | 'crashed';
  wallSeconds: number;
  crash?: string;
}

function runChild(entry: string, resultFile: string, limitMs: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((done) => {
    const argv = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', entry, '--runs', String(runs), '--seed', String(args.seed), '--result', resultFile];
    if (args.seconds) argv.push('--seconds', String(args.seconds));
    const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderr = (stderr + chunk.toString()).slice(-8000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stderr });
    });
  });
}

const selected = PROPERTIES.filter((p) => args.entries.length === 0 || args.entries.some((e) => p.entry.toLowerCase().includes(e.toLowerCase())));
if (selected.length === 0) throw new Error(`no entry matches ${args.entries.join(', ')}; entries: ${PROPERTIES.map((p) => p.entry).join(', ')}`);
const started = Date.now();
const work = join(tmpdir(), `minielm-fuzz-run-${process.pid}`);
await mkdir(work, { recursive: true });
const summaries: EntrySummary[] = [];
for (const p of selected) {
  process.stdout.write(`# ${p.entry}: ${args.seconds ? `${args.seconds} s` : `${runs} inputs`}, seed ${args.seed}\n`);
  const file = join(work, `${summaries.length}.json`);
  const t0 = Date.now();
  // Generous: a run of --seconds S ends by itself; a fixed count gets an hour before it counts as stuck.
  const { code, signal, stderr } = await runChild(p.entry, file, args.seconds ? args.seconds * 1000 + 600_000 : 3_600_000);
  const wallSeconds = (Date.now() - t0) / 1000;
  let result: FuzzResult | undefined;
  try {
    result = JSON.parse(await readFile(file, 'utf8')) as FuzzResult;
  } catch {
    result = undefined;
  }
  if (!result) {
    const why = signal ? `killed by ${signal}` : `exit ${code}`;
    summaries.push({ entry: p.entry, status: 'crashed', wallSeconds, crash: `${why}: ${stderr.trim().split('\n').slice(-6).join(' | ')}` });
  } else {
    summaries.push({ ...result, status: result.failures > 0 ? 'failures' : result.sanity !== 'ok' ? 'sanity' : 'ok', wallSeconds });
  }
}
await rm(work, { recursive: true, force: true });
const wall = (Date.now() - started) / 1000;

process.stdout.write('\nentry                         inputs  failures     known    time (s)  status\n');
for (const s of summaries)
  process.stdout.write(`${s.entry.padEnd(26)} ${String(s.runs ?? '-').padStart(9)} ${String(s.failures ?? '-').padStart(9)} ${String(s.known ?? '-').padStart(9)} ${s.wallSeconds.toFixed(1).padStart(11)}  ${s.status}${s.crash ? ` (${s.crash.slice(0, 200)})` : ''}\n`);
const totals = {
  entries: summaries.length,
  inputs: summaries.reduce((n, s) => n + (s.runs ?? 0), 0),
  failures: summaries.reduce((n, s) => n + (s.failures ?? 0), 0),
  known: summaries.reduce((n, s) => n + (s.known ?? 0), 0),
  crashed: summaries.filter((s) => s.status === 'crashed').length,
  sanityFailures: summaries.filter((s) => s.status === 'sanity').length,
  minInputsPerEntry: Math.min(...summaries.map((s) => s.runs ?? 0)),
};
process.stdout.write(`\n${totals.inputs} inputs over ${totals.entries} entries (at least ${totals.minInputsPerEntry} each), ${totals.failures} failures, ${totals.known} known, ${totals.crashed} crashed, in ${wall.toFixed(0)} s\n`);
await mkdir(dirname(args.out), { recursive: true });
await writeFile(args.out, `${JSON.stringify({ kind: 'minielm-api-fuzz', node: process.version, seed: args.seed, runsPerEntry: args.runs ?? null, secondsPerEntry: args.seconds ?? null, started: new Date(started).toISOString(), wallSeconds: wall, totals, entries: summaries }, null, 2)}\n`);
process.stdout.write(`summary: ${args.out}\n`);
process.exit(totals.failures > 0 || totals.crashed > 0 || totals.sanityFailures > 0 ? 1 : 0);
