// The probe table: queries a Home Depot shopper could type that the engine handles badly as typed —
// misspelled ("gas powerd lawn mowr"), abbreviated ("ss dishwasher"), or vague ("warm up a cold garage")
// — each with the words a good rewrite must contain. It exists because ROUGE-L against Q2Q references
// and rewards under a learned M1 can both rise while a rewriter still cannot fix a typo: a probe passes
// only if a rewrite holds every required word, which copying the query never does (each probe query
// misses at least one required word by construction; test/eval-probes.test.ts checks it).
//
// We wrote these probes ourselves; none is a query of the Home Depot file (the test checks the whole file
// when it is present), so no rewriter saw them as training or test queries. The required words appear in
// Home Depot product titles, so a rewrite that holds them can retrieve real products.
//
// Matching is on analysed word stems (lib/retrieval/analyzer.ts: NFKC, lower case, letters and digits,
// the English plural S-stemmer), so "Lights" matches "light". A requirement lists alternatives, any one
// of which will do; an alternative of several words needs all of them, or the words written as one
// ("lawn mower" also matches "lawnmower"). A single required word also matches two adjacent rewrite words
// written apart ("deadbolt" matches "dead bolt").
import { analyze } from '../retrieval/analyzer.ts';
import { invalidArgument } from '../errors.ts';
import { checkRewrites, type RewritesFor } from './rewriters.ts';

export type ProbeKind = 'misspelled' | 'abbreviated' | 'vague';

export interface Probe {
  query: string;
  kind: ProbeKind;
  /** Every entry must be met; an entry is one word/phrase or a list of acceptable alternatives. */
  mustContain: readonly (string | readonly string[])[];
}

export const HOMEDEPOT_PROBES: readonly Probe[] = [
  // Misspelled: dropped, doubled, swapped or phonetic letters, as in the real Home Depot queries.
  { kind: 'misspelled', query: 'gas powerd lawn mowr', mustContain: ['gas', ['mower', 'lawn mower']] },
  { kind: 'misspelled', query: 'solar lites for walkway', mustContain: ['solar', ['light', 'lighting']] },
  { kind: 'misspelled', query: 'ceiling fan with ligt kit', mustContain: ['ceiling', 'fan', ['light', 'lighting']] },
  { kind: 'misspelled', query: 'kitchen facet with sprayer', mustContain: ['kitchen', 'faucet'] },
  { kind: 'misspelled', query: 'stainles french door refridgerator', mustContain: ['stainless', 'refrigerator'] },
  { kind: 'misspelled', query: 'elongated toliet seat white', mustContain: ['toilet', 'seat'] },
  { kind: 'misspelled', query: 'cordless dril 20v', mustContain: ['cordless', 'drill'] },
  { kind: 'misspelled', query: 'vinal plank floor', mustContain: ['vinyl', 'plank'] },
  { kind: 'misspelled', query: 'wet dry shop vaccum', mustContain: [['vacuum', 'shop vac']] },
  { kind: 'misspelled', query: 'garage door openner', mustContain: ['garage', 'door', 'opener'] },
  { kind: 'misspelled', query: 'gas pressure washr', mustContain: ['pressure', 'washer'] },
  { kind: 'misspelled', query: 'dehumidifer for basement', mustContain: ['dehumidifier'] },
  { kind: 'misspelled', query: '36 inch bathroom vanaty', mustContain: ['vanity'] },
  { kind: 'misspelled', query: 'electic water heater 40 gal', mustContain: ['electric', 'water', 'heater'] },
  { kind: 'misspelled', query: 'portible generator', mustContain: ['portable', 'generator'] },
  { kind: 'misspelled', query: 'window air conditoner', mustContain: ['air', 'conditioner'] },
  { kind: 'misspelled', query: 'patio umbrela with base', mustContain: ['patio', 'umbrella'] },
  { kind: 'misspelled', query: 'curved shower curtin rod', mustContain: ['curtain', 'rod'] },
  { kind: 'misspelled', query: 'led recesed light 6 inch', mustContain: ['recessed', ['light', 'lighting']] },
  { kind: 'misspelled', query: 'airless paint sprayr', mustContain: ['paint', 'sprayer'] },
  { kind: 'misspelled', query: 'carpet cleanr machine', mustContain: ['carpet', 'cleaner'] },
  { kind: 'misspelled', query: 'over the range microwve', mustContain: ['microwave'] },
  { kind: 'misspelled', query: 'water softner salt', mustContain: ['softener'] },
  { kind: 'misspelled', query: 'outdoor extention cord 50 ft', mustContain: ['extension', 'cord'] },
  { kind: 'misspelled', query: 'circuler saw blade', mustContain: ['circular', 'saw', 'blade'] },
  { kind: 'misspelled', query: 'porcelin tile for bathroom floor', mustContain: ['porcelain', 'tile'] },
  { kind: 'misspelled', query: 'attic insulaton roll', mustContain: ['insulation'] },
  { kind: 'misspelled', query: 'sump pupm 1/2 hp', mustContain: ['sump', 'pump'] },
  { kind: 'misspelled', query: 'polyurathane for hardwood floors', mustContain: ['polyurethane'] },
  { kind: 'misspelled', query: 'chainsaw chian 18 inch', mustContain: ['chain'] },
  { kind: 'misspelled', query: 'frigidare dishwaser', mustContain: ['frigidaire', 'dishwasher'] },
  { kind: 'misspelled', query: 'weed eatter string', mustContain: [['trimmer', 'weed eater']] },
  { kind: 'misspelled', query: 'mosquito repelant', mustContain: ['mosquito', 'repellent'] },
  { kind: 'misspelled', query: 'programable thermastat', mustContain: ['programmable', 'thermostat'] },
  { kind: 'misspelled', query: 'kitchen cabnet knobs', mustContain: ['cabinet', ['knob', 'pull']] },
  { kind: 'misspelled', query: 'gardn hose nozzel', mustContain: ['hose', 'nozzle'] },
  { kind: 'misspelled', query: 'semi transparent deck stian', mustContain: ['deck', 'stain'] },
  { kind: 'misspelled', query: 'flourescent tube bulb 4 ft', mustContain: ['fluorescent'] },
  { kind: 'misspelled', query: 'hardwired smoke detecter', mustContain: ['smoke', ['detector', 'alarm']] },
  // Abbreviated: shop-floor shorthand that product titles spell out.
  { kind: 'abbreviated', query: 'ss dishwasher 24 in', mustContain: ['stainless', 'dishwasher'] },
  { kind: 'abbreviated', query: 'stackable w/d', mustContain: ['washer', 'dryer'] },
  { kind: 'abbreviated', query: 'portable a/c 10000 btu', mustContain: ['portable', 'air conditioner'] },
  { kind: 'abbreviated', query: 'window ac unit 8000 btu', mustContain: ['air conditioner'] },
  { kind: 'abbreviated', query: 'elec fireplace insert', mustContain: ['electric', 'fireplace'] },
  { kind: 'abbreviated', query: 'ext latex paint 5 gal', mustContain: ['exterior', 'paint'] },
  { kind: 'abbreviated', query: 'int prehung door 30 in', mustContain: ['interior', 'door'] },
  { kind: 'abbreviated', query: 'galv deck screws', mustContain: ['galvanized', 'screw'] },
  { kind: 'abbreviated', query: 'alum ext ladder 24 ft', mustContain: ['aluminum', 'extension', 'ladder'] },
  { kind: 'abbreviated', query: 'fridge water filter', mustContain: ['refrigerator', 'filter'] },
  { kind: 'abbreviated', query: 'pt lumber 2x6', mustContain: ['pressure', 'treated'] },
  { kind: 'abbreviated', query: 'gfi outlet 20 amp', mustContain: [['gfci', 'ground fault'], ['outlet', 'receptacle']] },
  { kind: 'abbreviated', query: 'pvc cplg 1 in', mustContain: ['pvc', 'coupling'] },
  // Vague: the shopper names the job, not the product.
  { kind: 'vague', query: 'something to kill weeds in driveway', mustContain: ['weed', ['killer', 'herbicide']] },
  { kind: 'vague', query: 'keep deer out of garden', mustContain: ['deer', ['repellent', 'fence', 'fencing']] },
  { kind: 'vague', query: 'clear snow off driveway', mustContain: ['snow', ['blower', 'shovel']] },
  { kind: 'vague', query: 'fix hole in wall', mustContain: [['spackling', 'patch', 'joint compound']] },
  { kind: 'vague', query: 'cut high tree branches', mustContain: [['pole saw', 'pruner', 'lopper']] },
  { kind: 'vague', query: 'light over kitchen island', mustContain: [['pendant', 'chandelier']] },
  { kind: 'vague', query: 'get rid of ants in house', mustContain: ['ant', ['killer', 'bait']] },
  { kind: 'vague', query: 'hang tv on wall', mustContain: ['tv', ['mount', 'bracket']] },
  { kind: 'vague', query: 'warm up a cold garage', mustContain: ['heater'] },
  { kind: 'vague', query: 'make my lawn greener', mustContain: [['fertilizer', 'grass seed', 'lawn food']] },
];

function stemmedTerms(text: string): string[] {
  return analyze(text, { stem: 'minimal' });
}

/** The stems a rewrite offers: its words, and each pair of adjacent words written as one. */
function offeredStems(rewrite: string): Set<string> {
  const raw = analyze(rewrite);
  const stems = new Set(stemmedTerms(rewrite));
  for (let i = 0; i + 1 < raw.length; i++) for (const t of stemmedTerms(raw[i] + raw[i + 1])) stems.add(t);
  return stems;
}

function alternativeMet(alternative: string, offered: Set<string>): boolean {
  const words = stemmedTerms(alternative);
  if (words.length === 0) return false;
  if (words.every((w) => offered.has(w))) return true;
  // "lawn mower" is also met by "lawnmower".
  return words.length > 1 && stemmedTerms(analyze(alternative).join('')).every((w) => offered.has(w));
}

/** True when `rewrite` meets every requirement of `mustContain`. */
export function containsRequired(rewrite: string, mustContain: Probe['mustContain']): boolean {
  const offered = offeredStems(rewrite);
  return mustContain.every((req) => (typeof req === 'string' ? [req] : req).some((alt) => alternativeMet(alt, offered)));
}

export interface ProbeResult {
  query: string;
  kind: ProbeKind;
  mustContain: Probe['mustContain'];
  /** The first n rewrites the rewriter returned, as returned. */
  rewrites: string[];
  passAt1: boolean;
  passAtN: boolean;
  /** 1-based rank of the first passing rewrite, null when none of the first n passes. */
  firstPass: number | null;
}

export interface ProbeSummary {
  probes: number;
  /** Shares in [0, 1]. */
  passAt1: number;
  passAtN: number;
  n: number;
  byKind: Partial<Record<ProbeKind, { probes: number; passAt1: number; passAtN: number }>>;
  results: ProbeResult[];
}

/**
 * Runs `rewritesFor` on every probe query. pass@1: the top rewrite meets every requirement; pass@n: one
 * of the first n rewrites does (n default 10).
 */
export async function evaluateProbes(rewritesFor: RewritesFor, probes: readonly Probe[] = HOMEDEPOT_PROBES, options: { n?: number } = {}): Promise<ProbeSummary> {
  const n = options.n ?? 10;
  if (!Number.isInteger(n) || n < 1) throw invalidArgument(`evaluateProbes option n must be an integer >= 1, got ${n}`);
  if (probes.length === 0) throw invalidArgument('evaluateProbes needs at least one probe (e.g. HOMEDEPOT_PROBES)');
  probes.forEach((p, i) => {
    if (typeof p.query !== 'string' || !p.query.trim()) throw invalidArgument(`probe ${i} has no query`);
    if (!Array.isArray(p.mustContain) || p.mustContain.length === 0) throw invalidArgument(`probe ${i} ("${p.query}") needs at least one required word in mustContain`);
  });
  const queries = probes.map((p) => p.query);
  const all = checkRewrites(await rewritesFor(queries), queries);
  const results: ProbeResult[] = probes.map((p, i) => {
    const rewrites = all[i].slice(0, n);
    const idx = rewrites.findIndex((r) => containsRequired(r, p.mustContain));
    return { query: p.query, kind: p.kind, mustContain: p.mustContain, rewrites, passAt1: idx === 0, passAtN: idx >= 0, firstPass: idx >= 0 ? idx + 1 : null };
  });
  const share = (rs: ProbeResult[], key: 'passAt1' | 'passAtN'): number => rs.filter((r) => r[key]).length / Math.max(1, rs.length);
  const byKind: ProbeSummary['byKind'] = {};
  for (const kind of ['misspelled', 'abbreviated', 'vague'] as const) {
    const rs = results.filter((r) => r.kind === kind);
    if (rs.length) byKind[kind] = { probes: rs.length, passAt1: share(rs, 'passAt1'), passAtN: share(rs, 'passAtN') };
  }
  return { probes: results.length, passAt1: share(results, 'passAt1'), passAtN: share(results, 'passAtN'), n, byKind, results };
}
