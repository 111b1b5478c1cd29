// No leaks: 10^4 create / generate / dispose cycles of a tiny model, 10^3 Model.load / dispose and 10^3
// Rewriter.load / rewrite / close cycles, and models dropped without dispose (freed by the finalizer), in
// a child process of their own so its RSS is clean; RSS after a warm-up vs at the end, after global.gc().
// More cycles: npm run check:leaks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const BOUND_MB = 64;

interface Phase {
  cycles: number;
  rssAfterWarmupMb: number;
  rssEndMb: number;
  growthMb: number;
  heapGrowthMb: number;
  externalGrowthMb: number;
}

test(`RSS grows by less than ${BOUND_MB} MB over 10^4 create/generate/dispose, 10^3 load/dispose and 10^3 Rewriter load/close cycles`, () => {
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join('test', 'helpers', 'leak-check.ts'), '--creates', '10000', '--loads', '1000', '--rewriters', '1000', '--dropped', '2000', '--bound-mb', String(BOUND_MB)], { cwd: repo, encoding: 'utf8' });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  let result: Record<string, Phase | number>;
  try {
    result = JSON.parse(line) as Record<string, Phase | number>;
  } catch {
    throw new Error(`leak check printed no result (exit ${run.status ?? run.signal}):\n${run.stdout}\n${run.stderr}`);
  }
  for (const [name, p] of Object.entries(result)) {
    if (typeof p === 'number') continue;
    console.log(`leaks ${name}: ${p.cycles} cycles, RSS ${p.rssAfterWarmupMb} MB after warm-up -> ${p.rssEndMb} MB at the end (growth ${p.growthMb} MB; V8 heap ${p.heapGrowthMb} MB, external ${p.externalGrowthMb} MB)`);
    assert.ok(p.growthMb < BOUND_MB, `${name}: RSS grew by ${p.growthMb} MB over ${p.cycles} cycles`);
    assert.ok(p.heapGrowthMb < 16, `${name}: the V8 heap grew by ${p.heapGrowthMb} MB`);
  }
  assert.is(run.status, 0, run.stderr);
});

test.run();
