// `npm run bench [-- --only <prefix>]`: measures the figures of every bench module, prints one table and
// merges the figures into bench/results/latest.json (one flat object of named numbers).
// A module exports `group` (figure-name prefixes it can produce) and `run(ctx)` returning named figures.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface BenchContext {
  /** Figures measured so far in this run (machine.* first), so later modules can form ratios. */
  figures: Record<string, number>;
  /** True when the figure name is selected by --only (or no --only was given). */
  wants(name: string): boolean;
  /** Prints a line under the module's heading. */
  note(line: string): void;
}

export interface BenchModule {
  /** Prefixes of the figures this module can produce, e.g. ['gemm.', 'train.']. */
  readonly prefixes: string[];
  /** Machine figures this module needs even when --only excludes them. */
  readonly needs?: string[];
  run(ctx: BenchContext): Promise<Record<string, number>>;
}

const here = dirname(fileURLToPath(import.meta.url));
const moduleFiles = ['machine.ts', 'gemm.ts', 'train.ts', 'decode.ts', 'kernels.ts', 'retrieval.ts', 'judge.ts', 'relevance.ts', 'serve.ts'];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string', multiple: true }, out: { type: 'string' } } });
  const only = values.only ?? [];
  const outFile = values.out ?? join(here, 'results', 'latest.json');
  const figures: Record<string, number> = {};
  const wants = (name: string): boolean => only.length === 0 || only.some((p) => name.startsWith(p));
  const modules: { file: string; mod: BenchModule }[] = [];
  for (const file of moduleFiles) {
    if (!existsSync(join(here, file))) continue;
    modules.push({ file, mod: (await import(`./${file}`)) as BenchModule });
  }
  const neededMachine = new Set<string>();
  for (const { mod } of modules) {
    if (mod.prefixes.some((p) => only.length === 0 || only.some((o) => p.startsWith(o) || o.startsWith(p)))) {
      for (const n of mod.needs ?? []) neededMachine.add(n);
    }
  }
  const wantsOrNeeded = (name: string): boolean => wants(name) || [...neededMachine].some((n) => name.startsWith(n));
  for (const { file, mod } of modules) {
    const selected = mod.prefixes.some(
      (p) => wantsOrNeeded(p) || [...neededMachine].some((n) => n.startsWith(p)) || only.some((o) => o.startsWith(p) || p.startsWith(o)),
    );
    if (!selected) continue;
    console.log(`\n== ${file.replace(/\.ts$/, '')} ==`);
    const ctx: BenchContext = { figures, wants: wantsOrNeeded, note: (line) => console.log(`  ${line}`) };
    const got = await mod.run(ctx);
    Object.assign(figures, got);
  }
  const width = Math.max(10, ...Object.keys(figures).map((k) => k.length));
  console.log(`\n${'figure'.padEnd(width)}  value`);
  for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(width)}  ${formatNumber(v)}`);
  mkdirSync(dirname(outFile), { recursive: true });
  const previous = existsSync(outFile) ? (JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, number>) : {};
  writeFileSync(outFile, `${JSON.stringify({ ...previous, ...figures }, null, 2)}\n`);
  console.log(`\nwrote ${Object.keys(figures).length} figures to ${outFile}`);
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

await main();
