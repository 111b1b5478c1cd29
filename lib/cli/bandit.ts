// `minielm bandit simulate`: the LTR&R bandit's cumulative regret against uniform-random and top-beam picks
// under the embedded simulated users (lib/eval/bandit-simulation.ts), as an SVG, Markdown and JSON.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { invalidArgument } from '../errors.ts';
import { banditRegretMarkdown, banditRegretSvg, simulateBandit, type BanditSimulationOptions, type BanditSimulationResult } from '../eval/bandit-simulation.ts';
import { Rewriter } from '../serve/rewriter.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const help = `Usage: minielm bandit simulate [options]

Simulates choosing which rewrites of a query go to the engine (LTR&R): each round one query and one simulated
user; a policy sends --send of the query's --candidates rewrites; each sent rewrite shows its top --slate BM25
products and is clicked with the embedded user's probability. Policies: the Thompson-sampling bandit of
Rewriter.expand({ select: 'bandit' }), uniform random, the top beams only. Regret is measured against an
oracle that knows every rewrite's true click probability under the simulated users.

Writes <out>/bandit-regret.svg, bandit-regret.md and bandit-regret.json.

Options
  --rounds <n>          rounds per run (default 10000)
  --seeds <a,b,...>     one run per seed (default 1,2,3)
  --queries <n>         distinct queries of the synthetic catalog (default 100)
  --zipf <s>            query popularity exponent, 0 = uniform (default 1)
  --candidates <n>      candidate rewrites per query, n (default 10)
  --send <k>            rewrites sent per round, k (default 3)
  --slate <m>           products shown per sent rewrite (default 3)
  --profiles <n>        simulated users (default 200)
  --prior-weight <w>    the bandit's priorWeight (default 2)
  --model <dir>         candidates from a trained rewriter's beams and the bandit through Rewriter.expand /
                        feedback (a model trained on the synthetic catalog, e.g. runs/demo/online/best);
                        default: a stand-in rewriter (the most similar other catalog queries)
  --tail                also run a long-tail setting (1000 queries, uniform popularity) and report it
  --out <dir>           default docs/results
`;

function num(value: string | undefined, flag: string, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw invalidArgument(`${flag} must be a non-negative ${integer ? 'integer' : 'number'}, got "${value}"`);
  return n;
}

async function runs(seeds: number[], base: BanditSimulationOptions, model: string | undefined, label: string): Promise<BanditSimulationResult[]> {
  const out: BanditSimulationResult[] = [];
  for (const seed of seeds) {
    let rewriter: Rewriter | undefined;
    if (model) rewriter = await Rewriter.load(model, { bandit: { seed, ...(base.priorWeight !== undefined ? { priorWeight: base.priorWeight } : {}) } });
    try {
      const r = await simulateBandit({ ...base, seed, rewriter });
      const [b, u, t] = ['bandit', 'uniform', 'top'].map((p) => r.policies.find((x) => x.policy === p)!.regret);
      console.log(`${label} seed ${seed} | rounds ${r.options.rounds} | regret bandit ${b.toFixed(1)} | uniform ${u.toFixed(1)} | top ${t.toFixed(1)} | bandit/uniform ${(b / u).toFixed(3)} | ${r.seconds.toFixed(1)} s`);
      out.push(r);
    } finally {
      await rewriter?.close();
    }
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'simulate') {
    console.error(`minielm bandit: ${sub ? `unknown subcommand "${sub}"` : 'missing subcommand'}.\n\n${help}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: false,
    options: {
      rounds: { type: 'string' }, seeds: { type: 'string' }, queries: { type: 'string' }, zipf: { type: 'string' }, candidates: { type: 'string' },
      send: { type: 'string' }, slate: { type: 'string' }, profiles: { type: 'string' }, 'prior-weight': { type: 'string' }, model: { type: 'string' },
      tail: { type: 'boolean' }, out: { type: 'string' },
    },
  });
  const seeds = (values.seeds ?? '1,2,3').split(',').map((s) => num(s.trim(), '--seeds', 0));
  if (seeds.length === 0) throw invalidArgument('--seeds needs at least one seed, e.g. --seeds 1,2,3');
  const base: BanditSimulationOptions = {
    rounds: num(values.rounds, '--rounds', 10_000),
    queries: num(values.queries, '--queries', 100),
    zipf: num(values.zipf, '--zipf', 1, false),
    candidates: num(values.candidates, '--candidates', 10),
    send: num(values.send, '--send', 3),
    slate: num(values.slate, '--slate', 3),
    profiles: num(values.profiles, '--profiles', 200),
    ...(values['prior-weight'] !== undefined ? { priorWeight: num(values['prior-weight'], '--prior-weight', 2, false) } : {}),
  };
  const out = values.out ?? join('docs', 'results');
  const main = await runs(seeds, base, values.model, 'main');
  const extra = values.tail ? [{ title: 'Long tail: 1000 queries, uniform popularity (about 10 rounds per query)', runs: await runs(seeds, { ...base, queries: 1000, zipf: 0 }, values.model, 'tail') }] : [];
  const command = ['minielm', 'bandit', 'simulate', ...rest].join(' ');
  await mkdir(out, { recursive: true });
  // Curves kept (for re-plotting), rounded to keep the file small.
  const json = JSON.stringify({ command, main, ...(extra.length ? { tail: extra[0].runs } : {}) }, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v));
  await writeFileAtomic(join(out, 'bandit-regret.svg'), banditRegretSvg(main));
  await writeFileAtomic(join(out, 'bandit-regret.md'), banditRegretMarkdown(main, command, extra));
  await writeFileAtomic(join(out, 'bandit-regret.json'), `${json}\n`);
  const mean = (p: string): number => main.reduce((a, r) => a + r.policies.find((x) => x.policy === p)!.regret, 0) / main.length;
  const ratio = mean('bandit') / mean('uniform');
  console.log(`mean regret after ${base.rounds} rounds: bandit ${mean('bandit').toFixed(1)}, uniform ${mean('uniform').toFixed(1)}, top beams ${mean('top').toFixed(1)}; bandit/uniform ${ratio.toFixed(3)} (target <= 0.5: ${ratio <= 0.5 ? 'met' : 'not met'})`);
  console.log(`wrote ${join(out, 'bandit-regret.svg')}, bandit-regret.md, bandit-regret.json`);
  return 0;
}
