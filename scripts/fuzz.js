#!/usr/bin/env node
// Native fuzzing: builds the libFuzzer targets of native/fuzz/ (fuzz_*.cc) with clang
// -fsanitize=fuzzer,address,undefined into build-fuzz/, runs each for --seconds N (or until --runs
// executions) on its seed corpus (native/fuzz/corpus/<target>/, read only; new inputs go to
// build-fuzz/corpus/<target>/), prints executions and crashes per target and writes build-fuzz/summary.json.
// Then, when test/fuzz/run-js.ts exists, runs the JavaScript fuzzing with the same --seconds.
// Usage: npm run fuzz -- [--seconds N] [--runs N] [--only a,b] [--jobs N] [--parallel N] [--no-js] [--probe]
//        npm run fuzz -- --update-seeds [--only a,b]   (after a run: grow the committed seed corpora)
// Exit status: 0 when every target built and ran without a crash; 1 otherwise; 77 when no clang with
// libFuzzer is installed (Debian: apt-get install clang-14 libclang-rt-14-dev).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileAll, engineSources, findCompiler, link, root } from './native-build.js';

const argv = process.argv.slice(2);
function opt(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}
const seconds = Number(opt('seconds', '10'));
const runs = opt('runs', undefined);
const only = opt('only', '')
  .split(',')
  .filter(Boolean)
  .map((t) => (t.startsWith('fuzz_') ? t : `fuzz_${t}`));
const jobs = Number(opt('jobs', '2'));
const parallel = Math.max(1, Number(opt('parallel', '1')));
const withJs = !argv.includes('--no-js');
if (!(seconds > 0) || (runs !== undefined && !(Number(runs) > 0))) {
  console.error('fuzz: --seconds and --runs must be positive numbers');
  process.exit(2);
}

const out = join(root, 'build-fuzz');
const fuzzDir = join(root, 'native', 'fuzz');
const targets = readdirSync(fuzzDir)
  .filter((f) => /^fuzz_.*\.cc$/.test(f))
  .map((f) => f.replace(/\.cc$/, ''))
  .filter((t) => only.length === 0 || only.includes(t))
  .sort();
if (targets.length === 0) {
  console.error(`fuzz: no target matches --only ${only.join(',')}`);
  process.exit(2);
}

/** A clang++ whose -fsanitize=fuzzer links (the runtime is a separate Debian package). */
function findClang() {
  const probe = join(out, 'probe.cc');
  mkdirSync(out, { recursive: true });
  writeFileSync(probe, '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n');
  const candidates = [process.env.CXX_FUZZ, 'clang++', 'clang++-19', 'clang++-18', 'clang++-17', 'clang++-16', 'clang++-15', 'clang++-14'].filter(Boolean);
  for (const cxx of candidates) {
    if (!findCompiler([cxx])) continue;
    const r = spawnSync(cxx, ['-fsanitize=fuzzer,address,undefined', probe, '-o', join(out, 'probe')], { encoding: 'utf8' });
    if (r.status === 0) return cxx;
  }
  return undefined;
}

const cxx = findClang();
if (!cxx) {
  console.error('fuzz: SKIP: no clang++ with libFuzzer found (Debian: apt-get install clang-14 libclang-rt-14-dev; or set CXX_FUZZ)');
  process.exit(77);
}
// --probe: only say which compiler would be used (exit 0), or that there is none (77, above).
if (argv.includes('--probe')) {
  console.log(`fuzz: ${cxx} builds libFuzzer targets`);
  process.exit(0);
}

const common = ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all', '-pthread', '-Wall', '-Wextra', '-Wno-unknown-pragmas', '-Wno-unknown-warning-option'];
const libFlags = [...common, '-fsanitize=fuzzer-no-link,address,undefined'];
const linkFlags = [...common, '-fsanitize=fuzzer,address,undefined'];

const built = Date.now();
console.log(`# fuzz: building ${targets.length} targets with ${cxx} into build-fuzz/`);
let exes;
try {
  const engine = await compileAll({ compiler: cxx, flags: libFlags, sources: engineSources(), outDir: out, jobs });
  const mains = await compileAll({ compiler: cxx, flags: libFlags, sources: targets.map((t) => `native/fuzz/${t}.cc`), outDir: out, jobs });
  exes = [];
  for (let i = 0; i < targets.length; i++) exes.push(await link({ compiler: cxx, flags: linkFlags, inputs: [mains[i], ...engine], output: join(out, targets[i]) }));
} catch (err) {
  console.error(`fuzz: build failed: ${err.message}`);
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify({ ok: false, error: `build failed: ${err.message}` }, null, 2)}\n`);
  process.exit(1);
}
console.log(`# fuzz: built in ${((Date.now() - built) / 1000).toFixed(1)} s`);

// --update-seeds: adds to each seed corpus the inputs of build-fuzz/corpus/<target>/ that reach code (edges,
// not hit counts) the seeds do not, keeping the committed corpora small; then exits.
if (argv.includes('--update-seeds')) {
  for (let i = 0; i < targets.length; i++) {
    const seeds = join(fuzzDir, 'corpus', targets[i]);
    mkdirSync(seeds, { recursive: true });
    const r = spawnSync(exes[i], ['-merge=1', '-use_counters=0', seeds, join(out, 'corpus', targets[i])], { cwd: root, encoding: 'utf8' });
    const added = /MERGE-OUTER: (\d+) new files/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
    console.log(`${targets[i]}: ${added} seeds added, ${readdirSync(seeds).length} in native/fuzz/corpus/${targets[i]}/`);
    if (r.status !== 0) process.exit(1);
  }
  process.exit(0);
}

function runTarget(target, exe) {
  const corpus = join(out, 'corpus', target);
  const seeds = join(fuzzDir, 'corpus', target);
  const artifacts = join(out, 'artifacts', target);
  mkdirSync(corpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const args = [
    `-max_total_time=${Math.ceil(seconds)}`,
    '-print_final_stats=1',
    '-timeout=25',
    '-rss_limit_mb=4096',
    `-artifact_prefix=${artifacts}/`,
    ...(runs ? [`-runs=${runs}`] : []),
    corpus,
    ...(existsSync(seeds) ? [seeds] : []),
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(exe, args, {
      cwd: root,
      env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('close', (code, signal) => {
      const wall = (Date.now() - started) / 1000;
      const stat = (k) => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(log)?.[1] ?? NaN);
      let executions = stat('number_of_executed_units');
      // A crashed run prints no final stats: count the last status line it printed.
      if (!Number.isFinite(executions)) executions = Number([...log.matchAll(/^#(\d+)\s/gm)].pop()?.[1] ?? 0);
      const crashFiles = [...new Set([...log.matchAll(/Test unit written to (\S+)/g)].map((m) => m[1]))];
      const failed = code !== 0 || signal !== null;
      const reason = /FUZZ INVARIANT FAILED[^\n]*/.exec(log)?.[0] ?? /==\d+==ERROR: [^\n]*/.exec(log)?.[0] ?? /SUMMARY: [^\n]*/.exec(log)?.[0] ?? (failed ? `exit ${code ?? signal}` : undefined);
      writeFileSync(join(out, `${target}.log`), log);
      resolve({
        target,
        executions,
        crashes: failed ? Math.max(1, crashFiles.length) : 0,
        seconds: Number(wall.toFixed(1)),
        execPerSecond: Math.round(executions / Math.max(wall, 1e-3)),
        corpus: readdirSync(corpus).length,
        exitCode: code,
        ...(failed ? { reason, artifacts: crashFiles, log: `build-fuzz/${target}.log` } : {}),
      });
    });
  });
}

const results = [];
let nextIdx = 0;
await Promise.all(
  Array.from({ length: Math.min(parallel, targets.length) }, async () => {
    while (nextIdx < targets.length) {
      const i = nextIdx++;
      const r = await runTarget(targets[i], exes[i]);
      results.push(r);
      console.log(`${r.target}: ${r.executions} executions in ${r.seconds} s (${r.execPerSecond}/s), ${r.crashes} crashes${r.crashes ? ` -- ${r.reason} ${r.artifacts.join(' ')} (log: ${r.log})` : ''}`);
    }
  }),
);
results.sort((a, b) => a.target.localeCompare(b.target));

let js;
const jsScript = join(root, 'test', 'fuzz', 'run-js.ts');
if (withJs && existsSync(jsScript)) {
  console.log(`# fuzz: JavaScript fuzzing (node --import tsx test/fuzz/run-js.ts --seconds ${seconds})`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', jsScript, '--seconds', String(seconds)], { cwd: root, stdio: 'inherit' });
  js = { script: 'test/fuzz/run-js.ts', exitCode: r.status, signal: r.signal, seconds: Number(((Date.now() - started) / 1000).toFixed(1)) };
  console.log(`# fuzz: JavaScript fuzzing exited ${r.status ?? r.signal}`);
}

const totals = {
  targets: results.length,
  executions: results.reduce((s, r) => s + r.executions, 0),
  crashes: results.reduce((s, r) => s + r.crashes, 0),
};
const ok = totals.crashes === 0 && (js === undefined || js.exitCode === 0);
const summary = { ok, compiler: cxx, date: new Date().toISOString(), seconds, runs: runs ? Number(runs) : null, totals, targets: results, ...(js ? { js } : {}) };
writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(`# fuzz: ${totals.targets} targets, ${totals.executions} executions, ${totals.crashes} crashes; summary in build-fuzz/summary.json`);
process.exit(ok ? 0 : 1);
