// LTR&R offline: how much click-through the bandit that picks which rewrites go to the engine loses while it
// learns, against uniform-random picks and always sending the top beams, under the embedded simulated users.
//
// The world. Queries of the synthetic catalog (seeded sample, Zipf popularity: a few head queries, a long
// tail), each with n candidate rewrites: a trained Rewriter's n beams when one is given, else a cheap stand-in
// for a rewriter, the n other catalog queries most similar to it (word Jaccard, rank = similarity), which mixes
// same-intent forms with ones that ask for something else, like a real n-best list. A rewrite sent to the engine
// shows the user its own top `slate` BM25 products.
//
// Arms and their truth. An arm is (query, rewrite). Under profile u the embedded judge's position model gives
// click probabilities c_i at the slate's positions, relevance = the product's ground-truth gain for the
// ORIGINAL query's intent; the arm's click probability is P(at least one click) = 1 − Π_i (1 − c_i), and its
// true value μ(q, r) is that averaged over the profile pool (the bandit's context is the query, not the user).
//
// A round. Draw a query (popularity) and a user (uniform); each policy sends `send` of the n candidates; each
// sent arm is clicked with the user's probability (common random numbers: every policy sees the same uniform
// per candidate, so differences are the policies'); the bandit gets one feedback per arm sent.
//
// Regret (pseudo-regret, against an oracle that knows every μ): per round, the sum of the `send` largest
// μ(q, ·) minus the sum of μ over the arms the policy sent; cumulative regret R(T) sums it over rounds 1..T.
import { Bm25Retriever } from '../retrieval/bm25.ts';
import { generateSyntheticCatalog, labelFor, type SyntheticCatalog, type SyntheticProduct } from '../data/synthetic.ts';
import { ESCI_GAIN } from '../data/labels.ts';
import { createRng, hashString } from '../data/random.ts';
import { lexicalTokens } from '../rewards/relevance.ts';
import { EmbeddedJudge } from '../users/embedded-judge.ts';
import { generateProfiles, type UserProfile } from '../users/profiles.ts';
import { Bandit, normaliseArmText, type BanditStats } from '../serve/bandit.ts';
import type { Rewriter } from '../serve/rewriter.ts';
import { invalidArgument } from '../errors.ts';

export const BANDIT_POLICIES = ['bandit', 'uniform', 'top'] as const;
export type BanditPolicy = (typeof BANDIT_POLICIES)[number];

export const REGRET_DEFINITION =
  'Per round: the sum of the `send` largest true click probabilities among the query\'s candidate rewrites (the oracle, which knows each arm\'s ' +
  'P(at least one click on its slate) averaged over the simulated users) minus the sum of the true click probabilities of the rewrites the ' +
  'policy sent; cumulative regret sums this over rounds.';

export interface BanditSimulationOptions {
  /** Rounds (impressions). Default 10,000. */
  rounds?: number;
  /** Drives the query sample and popularity order, the profiles, the clicks, the bandit and uniform's picks. Default 1. */
  seed?: number;
  /** Distinct queries in the simulation. Default 100. */
  queries?: number;
  /** Zipf exponent of query popularity (0 = uniform). Default 1. */
  zipf?: number;
  /** Candidate rewrites per query (n). Default 10. */
  candidates?: number;
  /** Rewrites sent per round (k of n). Default 3. */
  send?: number;
  /** Products each sent rewrite shows. Default 3. */
  slate?: number;
  /** Simulated users in the pool. Default 200. */
  profiles?: number;
  /** The bandit's priorWeight. Default: the Bandit's (2). */
  priorWeight?: number;
  /** Points of each regret curve kept. Default 200. */
  points?: number;
  /** The catalog; default generateSyntheticCatalog({ seed: 1 }). */
  catalog?: SyntheticCatalog;
  /** Candidates from this rewriter's beams, and the bandit policy through rewriter.expand / feedback (it needs a bandit). */
  rewriter?: Rewriter;
}

export interface PolicyResult {
  policy: BanditPolicy;
  /** Cumulative regret after the last round. */
  regret: number;
  /** Cumulative regret at `steps`. */
  curve: number[];
  /** Expected clicks (sum of true μ of the arms sent) and realised clicks. */
  expectedClicks: number;
  clicks: number;
}

export interface BanditSimulationResult {
  options: { rounds: number; seed: number; queries: number; zipf: number; candidates: number; send: number; slate: number; profiles: number; priorWeight: number | null; candidateSource: 'similar-queries' | 'rewriter' };
  definition: string;
  /** The oracle's expected clicks per round, and the true μ of the arms (min / mean / max). */
  oraclePerRound: number;
  arms: { count: number; min: number; mean: number; max: number };
  steps: number[];
  policies: PolicyResult[];
  bandit: BanditStats;
  seconds: number;
}

interface SimQuery {
  text: string;
  candidates: string[];
  /** True μ per candidate, and per profile (profile-major: [u * n + c]). */
  mu: number[];
  muByUser: Float64Array;
  /** Sum of the `send` largest μ. */
  oracle: number;
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw invalidArgument(`bandit simulation: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** The stand-in rewriter: the n other catalog queries sharing most words (Jaccard), most similar first. */
function similarQueries(query: string, pool: readonly { text: string; words: Set<string> }[], n: number): string[] {
  const q = new Set(lexicalTokens(query));
  const self = normaliseArmText(query);
  const scored: { text: string; score: number; tie: number }[] = [];
  for (const other of pool) {
    if (normaliseArmText(other.text) === self) continue;
    let inter = 0;
    for (const w of other.words) if (q.has(w)) inter++;
    if (inter === 0) continue;
    scored.push({ text: other.text, score: inter / (q.size + other.words.size - inter), tie: hashString(other.text, 17) });
  }
  scored.sort((a, b) => b.score - a.score || a.tie - b.tie);
  return scored.slice(0, n).map((s) => s.text);
}

function vocabulary(catalog: SyntheticCatalog): { brands: string[]; colors: string[]; materials: string[]; styles: string[] } {
  const brands = new Set<string>(), colors = new Set<string>(), materials = new Set<string>(), styles = new Set<string>();
  for (const p of catalog.products.values()) {
    if (p.brand) brands.add(p.brand);
    if (p.color) colors.add(p.color);
    materials.add(p.material);
    styles.add(p.style);
  }
  return { brands: [...brands], colors: [...colors], materials: [...materials], styles: [...styles] };
}

/** Runs the three policies on the same rounds; see the comment at the top of this file. */
export async function simulateBandit(options: BanditSimulationOptions = {}): Promise<BanditSimulationResult> {
  const started = performance.now();
  const rounds = positiveInt('rounds', options.rounds ?? 10_000, 1);
  const seed = positiveInt('seed', options.seed ?? 1, 0);
  const nQueries = positiveInt('queries', options.queries ?? 100, 1);
  const n = positiveInt('candidates', options.candidates ?? 10, 1);
  const send = positiveInt('send', options.send ?? 3, 1);
  const slate = positiveInt('slate', options.slate ?? 3, 1);
  const nProfiles = positiveInt('profiles', options.profiles ?? 200, 1);
  const points = positiveInt('points', options.points ?? 200, 2);
  const zipf = options.zipf ?? 1;
  if (!(Number.isFinite(zipf) && zipf >= 0)) throw invalidArgument(`bandit simulation: zipf must be a number >= 0, got ${zipf}`);
  const rewriter = options.rewriter;
  if (rewriter && !rewriter.bandit) throw invalidArgument('bandit simulation: the rewriter needs a bandit (Rewriter.load(dir, { bandit: { seed } }))');

  const catalog = options.catalog ?? generateSyntheticCatalog({ seed: 1 });
  const products = [...catalog.products.values()];
  const bm25 = new Bm25Retriever();
  await bm25.index(products);
  const rng = createRng(hashString('bandit-sim', seed));

  // The queries: a seeded sample of distinct catalog queries, in a seeded popularity order.
  const byText = new Map(catalog.queries.map((q) => [normaliseArmText(q.text), q]));
  const distinct = [...byText.values()];
  for (let i = distinct.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [distinct[i], distinct[j]] = [distinct[j], distinct[i]];
  }
  const chosenQueries = distinct.slice(0, nQueries);
  const pool = distinct.map((q) => ({ text: q.text, words: new Set(lexicalTokens(q.text)) }));
  const candidateLists = rewriter
    ? (await rewriter.rewriteBatch(chosenQueries.map((q) => q.text), { n })).map((list) => list.map((r) => r.text))
    : chosenQueries.map((q) => similarQueries(q.text, pool, n));

  const profiles: UserProfile[] = generateProfiles(nProfiles, seed, { vocabulary: vocabulary(catalog) });
  const judge = new EmbeddedJudge({ seed });
  const slates = new Map<string, SyntheticProduct[]>();
  const texts = [...new Set(candidateLists.flat())];
  const lists = await bm25.search(texts, slate);
  texts.forEach((t, i) => slates.set(t, lists[i].map((id) => catalog.products.get(id)!)));

  const sim: SimQuery[] = [];
  for (let qi = 0; qi < chosenQueries.length; qi++) {
    const q = chosenQueries[qi];
    const candidates = candidateLists[qi];
    const muByUser = new Float64Array(nProfiles * candidates.length);
    for (let c = 0; c < candidates.length; c++) {
      const shown = slates.get(candidates[c])!;
      const relevance = shown.map((p) => ESCI_GAIN[labelFor(q.intent, p)]);
      for (let u = 0; u < nProfiles; u++) {
        const { positions } = await judge.explain({ profile: profiles[u], query: q.text, products: shown, relevance });
        muByUser[u * candidates.length + c] = 1 - positions.reduce((none, p) => none * (1 - p.click), 1);
      }
    }
    const mu = candidates.map((_, c) => {
      let s = 0;
      for (let u = 0; u < nProfiles; u++) s += muByUser[u * candidates.length + c];
      return s / nProfiles;
    });
    const oracle = [...mu].sort((a, b) => b - a).slice(0, send).reduce((a, b) => a + b, 0);
    sim.push({ text: q.text, candidates, mu, muByUser, oracle });
  }
  const allMu = sim.flatMap((q) => q.mu);

  // Zipf popularity over the sample order.
  const weights = sim.map((_, i) => 1 / (i + 1) ** zipf);
  const cumulative: number[] = [];
  weights.reduce((acc, w, i) => (cumulative[i] = acc + w), 0);
  const totalWeight = cumulative[cumulative.length - 1];
  const drawQuery = (u: number): number => {
    const x = u * totalWeight;
    let lo = 0, hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };

  const bandit = rewriter ? rewriter.bandit! : new Bandit({ seed, ...(options.priorWeight !== undefined ? { priorWeight: options.priorWeight } : {}) });
  const uniformRng = createRng(hashString('uniform', seed));
  const steps: number[] = [];
  for (let i = 1; i <= points; i++) steps.push(Math.max(1, Math.round((i * rounds) / points)));
  const state = BANDIT_POLICIES.map((policy) => ({ policy, regret: 0, curve: [] as number[], expectedClicks: 0, clicks: 0 }));
  let oracleTotal = 0;
  let nextStep = 0;
  const uniforms = new Float64Array(n);

  for (let t = 1; t <= rounds; t++) {
    const q = sim[drawQuery(rng())];
    const user = Math.floor(rng() * nProfiles);
    const m = q.candidates.length;
    for (let c = 0; c < m; c++) uniforms[c] = rng();
    oracleTotal += q.oracle;
    for (const s of state) {
      let sent: number[];
      if (m === 0) sent = [];
      else if (s.policy === 'top') sent = q.candidates.slice(0, send).map((_, i) => i);
      else if (s.policy === 'uniform') {
        const idx = q.candidates.map((_, i) => i);
        for (let i = 0; i < Math.min(send, m); i++) {
          const j = i + Math.floor(uniformRng() * (m - i));
          [idx[i], idx[j]] = [idx[j], idx[i]];
        }
        sent = idx.slice(0, Math.min(send, m));
      } else if (rewriter) {
        const expansion = await rewriter.expand(q.text, bm25, { n, k: slate, select: 'bandit', send });
        const index = new Map(q.candidates.map((c, i) => [c, i]));
        sent = expansion.rewrites.map((r) => index.get(r.text)!);
        if (sent.some((i) => i === undefined)) throw new Error(`bandit simulation: expand sent a rewrite of "${q.text}" that rewriteBatch did not return`);
      } else sent = bandit.select(q.text, q.candidates, send).chosen;
      let expected = 0;
      for (const c of sent) {
        expected += q.mu[c];
        const clicked = uniforms[c] < q.muByUser[user * m + c];
        if (clicked) s.clicks++;
        if (s.policy === 'bandit') {
          if (rewriter) await rewriter.feedback({ query: q.text, rewrite: q.candidates[c], clicked });
          else bandit.update(q.text, q.candidates[c], clicked);
        }
      }
      s.expectedClicks += expected;
      s.regret += q.oracle - expected;
    }
    while (nextStep < steps.length && steps[nextStep] === t) {
      for (const s of state) s.curve.push(s.regret);
      nextStep++;
    }
  }

  return {
    options: { rounds, seed, queries: sim.length, zipf, candidates: n, send, slate, profiles: nProfiles, priorWeight: options.priorWeight ?? null, candidateSource: rewriter ? 'rewriter' : 'similar-queries' },
    definition: REGRET_DEFINITION,
    oraclePerRound: oracleTotal / rounds,
    arms: {
      count: allMu.length,
      min: allMu.length ? Math.min(...allMu) : 0,
      mean: allMu.length ? allMu.reduce((a, b) => a + b, 0) / allMu.length : 0,
      max: allMu.length ? Math.max(...allMu) : 0,
    },
    steps,
    policies: state,
    bandit: bandit.stats(),
    seconds: (performance.now() - started) / 1000,
  };
}

const COLORS: Record<BanditPolicy, string> = { bandit: '#1b7837', uniform: '#b2182b', top: '#2166ac' };
const LABELS: Record<BanditPolicy, string> = { bandit: 'Thompson bandit', uniform: 'uniform random', top: 'top beams only' };

/** Cumulative regret of each policy against rounds, mean over the runs (every run a thin line), hand-written SVG. */
export function banditRegretSvg(runs: readonly BanditSimulationResult[]): string {
  const W = 640, H = 380, L = 64, R = 16, T = 30, B = 46;
  if (runs.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">no simulation runs</text></svg>\n`;
  const steps = runs[0].steps;
  const curves = (p: BanditPolicy): number[][] => runs.map((r) => r.policies.find((x) => x.policy === p)!.curve);
  const mean = (cs: number[][]): number[] => steps.map((_, i) => cs.reduce((a, c) => a + c[i], 0) / cs.length);
  const top = Math.max(1e-9, ...runs.flatMap((r) => r.policies.flatMap((p) => p.curve)));
  // The axis ends at the next multiple of half a power of ten.
  const unit = 10 ** Math.floor(Math.log10(top)) / 2;
  const hi = Math.ceil(top / unit) * unit;
  const x1 = steps[steps.length - 1];
  const px = (x: number): number => L + (x / x1) * (W - L - R);
  const py = (y: number): number => T + (1 - y / hi) * (H - T - B);
  const path = (ys: number[]): string => `M${px(0).toFixed(1)},${py(0).toFixed(1)} ` + ys.map((y, i) => `L${px(steps[i]).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * hi);
  const xticks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * x1));
  const o = runs[0].options;
  const lines: string[] = [];
  for (const p of BANDIT_POLICIES) {
    if (runs.length > 1) for (const c of curves(p)) lines.push(`<path d="${path(c)}" fill="none" stroke="${COLORS[p]}" stroke-width="0.8" stroke-opacity="0.35"/>`);
    lines.push(`<path d="${path(mean(curves(p)))}" fill="none" stroke="${COLORS[p]}" stroke-width="2.2"/>`);
  }
  const legend = BANDIT_POLICIES.map((p, i) => {
    const y = T + 20 + i * 16;
    const final = runs.reduce((a, r) => a + r.policies.find((x) => x.policy === p)!.regret, 0) / runs.length;
    return `<line x1="${L + 12}" x2="${L + 34}" y1="${y}" y2="${y}" stroke="${COLORS[p]}" stroke-width="2.2"/><text x="${L + 40}" y="${y + 4}">${LABELS[p]} (${final.toFixed(0)})</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Cumulative regret: which ${o.send} of ${o.candidates} rewrites to send (${runs.length} seed${runs.length > 1 ? 's' : ''}, mean bold)</text>
${ticks.map((t) => `<line x1="${L}" x2="${W - R}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#ddd"/><text x="${L - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t.toFixed(0)}</text>`).join('\n')}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/>
${xticks.map((x) => `<text x="${px(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`).join('')}
<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">round (one query, one simulated user)</text>
<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">expected clicks lost to the oracle</text>
${lines.join('\n')}
<rect x="${L + 6}" y="${T + 6}" width="230" height="56" fill="white" stroke="#ccc"/>
${legend.join('\n')}
</svg>
`;
}

function setupLine(o: BanditSimulationResult['options']): string {
  return `${o.rounds} rounds, ${o.queries} queries (${o.zipf === 0 ? 'uniform popularity' : `Zipf popularity, exponent ${o.zipf}`}), ${o.candidates} candidate rewrites per query ` +
    `(${o.candidateSource === 'rewriter' ? "a trained rewriter's beams; the bandit runs through Rewriter.expand / feedback" : 'stand-in rewriter: the most similar other catalog queries by word overlap, ranked by similarity; the bandit is the Bandit class Rewriter.expand uses'}), ` +
    `${o.send} sent per round, ${o.slate} BM25 products shown per sent rewrite, ${o.profiles} simulated user profiles, bandit priorWeight ${o.priorWeight ?? 2}.`;
}

function regretTable(runs: readonly BanditSimulationResult[]): string[] {
  const get = (r: BanditSimulationResult, p: BanditPolicy): PolicyResult => r.policies.find((x) => x.policy === p)!;
  const f1 = (v: number): string => v.toFixed(1);
  const lines = [
    '| seed | oracle clicks / round | bandit regret | uniform regret | top-beam regret | bandit / uniform | target (<= 0.5) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of runs) {
    const b = get(r, 'bandit').regret, u = get(r, 'uniform').regret, t = get(r, 'top').regret;
    lines.push(`| ${r.options.seed} | ${r.oraclePerRound.toFixed(3)} | ${f1(b)} | ${f1(u)} | ${f1(t)} | ${(b / u).toFixed(4)} | ${b <= 0.5 * u ? 'met' : 'not met'} |`);
  }
  const mean = (p: BanditPolicy): number => runs.reduce((a, r) => a + get(r, p).regret, 0) / runs.length;
  const b = mean('bandit'), u = mean('uniform'), t = mean('top');
  lines.push(`| mean | ${(runs.reduce((a, r) => a + r.oraclePerRound, 0) / runs.length).toFixed(3)} | ${f1(b)} | ${f1(u)} | ${f1(t)} | ${(b / u).toFixed(4)} | ${b <= 0.5 * u ? 'met' : 'not met'} |`);
  lines.push('', '| seed | realised clicks: bandit | uniform | top beams | arms (true click probability min / mean / max) | bandit arms held | seconds |', '| ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const r of runs) {
    lines.push(`| ${r.options.seed} | ${get(r, 'bandit').clicks} | ${get(r, 'uniform').clicks} | ${get(r, 'top').clicks} | ${r.arms.count} (${r.arms.min.toFixed(3)} / ${r.arms.mean.toFixed(3)} / ${r.arms.max.toFixed(3)}) | ${r.bandit.arms} | ${r.seconds.toFixed(1)} |`);
  }
  return lines;
}

/**
 * The numbers behind the SVG, as Markdown: per seed and mean, and whether the bandit's regret is at most half
 * of uniform's; `extra` settings (e.g. a long tail of queries) get a section each.
 */
export function banditRegretMarkdown(runs: readonly BanditSimulationResult[], command: string, extra: readonly { title: string; runs: readonly BanditSimulationResult[] }[] = []): string {
  const lines = [
    '# Bandit selection of rewrites (LTR&R): cumulative regret',
    '',
    '> SIMULATED: the synthetic catalog and the embedded simulated users (lib/users/embedded-judge.ts); no real clicks.',
    '',
    `Command: \`${command}\``,
    '',
  ];
  if (runs.length === 0) return `${lines.join('\n')}\nNo runs.\n`;
  lines.push(`Regret: ${runs[0].definition}`, '', `Setup: ${setupLine(runs[0].options)}`, '', ...regretTable(runs), '', 'The curve: bandit-regret.svg (cumulative regret against rounds, each seed thin, the mean bold).', '');
  for (const section of extra) {
    if (section.runs.length === 0) continue;
    lines.push(`## ${section.title}`, '', `Setup: ${setupLine(section.runs[0].options)}`, '', ...regretTable(section.runs), '');
  }
  return lines.join('\n');
}
