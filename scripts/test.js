#!/usr/bin/env node
// Runs every uvu suite under test/ in its own Node process (a native crash in one file cannot hide
// the others), then prints one closing line "N passed, N failed, N skipped" for CI.
// Skips are uvu's own (test.skip, counted in its "Skipped:" line; test/helpers/skip.ts registers them and
// prints "!!! SKIPPED: <test>: <reason> !!!"). The reasons are repeated before the closing line, and a
// file that announces more skips than uvu counted (a test that printed a notice and returned, so it was
// counted as passed) is a failure.
// Usage: node scripts/test.js [filter-substring...]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
const files = readdirSync(join(root, 'test'))
  .filter((f) => /\.test\.ts$/.test(f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

let passed = 0;
let failed = 0;
let skipped = 0;
const broken = [];
const skipNotes = [];
// The type check counts as one test: strict TypeScript across lib/, test/ and bench/.
if (filters.length === 0) {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--noEmit'], { cwd: root, encoding: 'utf8' });
  process.stdout.write(`# typecheck: ${tsc.status === 0 ? 'ok' : 'FAILED'}\n${tsc.stdout}${tsc.stderr}`);
  if (tsc.status === 0) passed += 1;
  else {
    failed += 1;
    broken.push('typecheck (tsc --noEmit)');
  }
}
for (const file of files) {
  const started = Date.now();
  const run = spawnSync(process.execPath, ['--import', 'tsx', join('test', file)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  process.stdout.write(out);
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  // Skip notices, also old-style ones ("SKIPPED: ..." after uvu's progress dots).
  const announced = out.split('\n').map((l) => l.replace(/^[\s•✘]+/, '')).filter((l) => /^(!!!\s*)?SKIPPED\b/.test(l));
  skipNotes.push(...announced.map((l) => `${file}: ${l.replace(/^!!!\s*/, '').replace(/\s*!!!\s*$/, '')}`));
  if (!Number.isFinite(total) || !Number.isFinite(ok)) {
    // The file crashed before uvu could summarise: count it as one failure.
    failed += 1;
    broken.push(`${file} (exit ${run.status ?? run.signal}, no summary)`);
  } else {
    // A notice without a uvu skip behind it means a test returned early and was counted as a pass.
    const fake = Math.max(0, announced.length - skip);
    passed += Math.max(0, ok - fake);
    skipped += skip;
    failed += total - ok + fake;
    if (run.status !== 0) broken.push(`${file} (exit ${run.status})`);
    if (fake > 0) broken.push(`${file} (announces ${announced.length} skip(s) but uvu counted ${skip}: a skipped test passed instead; use test/helpers/skip.ts)`);
  }
  process.stdout.write(`# ${file}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
if (skipNotes.length || skipped > 0) process.stdout.write(`\nSkipped (${skipped}):\n  ${skipNotes.join('\n  ') || '(no reason printed)'}\n`);
if (broken.length) process.stdout.write(`\nFailing files:\n  ${broken.join('\n  ')}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 || broken.length > 0 ? 1 : 0);
