// Self-supervised rewrite pairs from the catalog itself. There are no pretrained weights and few labelled
// Q2Q pairs (4,936 on Home Depot at k = 2), so the models also learn from "noisy query -> clean query"
// pairs: the mistakes shoppers really make (keyboard-neighbour typos, dropped / doubled / swapped
// letters, dropped or merged words, abbreviations, singular/plural) applied to real training queries and
// to short title phrases, with the clean text as the target. No label is needed, the clean side is real
// catalog or query language, and numbers are never altered (a rewrite that turns "2x4" into "2x5" is a
// different product, so the model must not learn that noise can be "corrected" that way).
import { createRng, pick, shuffleInPlace } from './random.ts';
import { invalidArgument } from '../errors.ts';
import type { Q2QPair } from './types.ts';

/** The rewrite-pair shape the SFT trainer takes (lib/train/sft.ts RewritePair). */
export type DenoisingPair = Pick<Q2QPair, 'query' | 'rewrite'>;

export const NOISE_KINDS = ['keyboard', 'drop-letter', 'double-letter', 'swap-letters', 'drop-word', 'merge-words', 'abbreviation', 'plural'] as const;
export type NoiseKind = (typeof NOISE_KINDS)[number];

/**
 * Relative frequency of each kind. Letter-level slips dominate real query logs (most Home Depot typos
 * are one neighbour key, one missing or one transposed letter), so they weigh most; word-level edits
 * change more of the query and are rarer.
 */
export const DEFAULT_NOISE_WEIGHTS: Readonly<Record<NoiseKind, number>> = {
  'keyboard': 3,
  'drop-letter': 2,
  'double-letter': 1,
  'swap-letters': 2,
  'drop-word': 1,
  'merge-words': 1,
  'abbreviation': 2,
  'plural': 2,
};

export interface NoiseOptions {
  /** Fewest edits per noisy text (default 1). */
  minEdits?: number;
  /** Most edits per noisy text (default 2): more would make the query hard to recognise. */
  maxEdits?: number;
  /** Relative weight per kind (missing kinds keep DEFAULT_NOISE_WEIGHTS; 0 turns a kind off). */
  weights?: Partial<Record<NoiseKind, number>>;
}

export interface NoisyText {
  text: string;
  /** The edits applied, in order (each kind at most once). */
  kinds: NoiseKind[];
}

// QWERTY neighbours of each letter (same row and the rows above and below), the keys a finger slips to.
export const QWERTY_NEIGHBOURS: Readonly<Record<string, string>> = {
  q: 'wa', w: 'qeas', e: 'wrsd', r: 'etdf', t: 'ryfg', y: 'tugh', u: 'yihj', i: 'uojk', o: 'ipkl', p: 'ol',
  a: 'qwsz', s: 'weadzx', d: 'erfsxc', f: 'rtdgcv', g: 'tyfhvb', h: 'yugjbn', j: 'uihknm', k: 'iojlm', l: 'opk',
  z: 'asx', x: 'zsdc', c: 'xdfv', v: 'cfgb', b: 'vghn', n: 'bhjm', m: 'njk',
};

interface Abbreviation {
  /** Long forms (words), the first one is what an expansion writes. */
  long: readonly string[];
  short: string;
  /** The short form may be expanded back (false where the long form is not what people type). */
  expand: boolean;
  /** The short form is also an ordinary word ("in", "v"), so it is only read as a unit after a number. */
  afterNumber?: boolean;
}

// Real hardware / home-improvement abbreviations, as they appear in Home Depot queries and titles.
const ABBREVIATIONS: readonly Abbreviation[] = [
  { long: ['inch'], short: 'in', expand: true, afterNumber: true },
  { long: ['inches'], short: 'in', expand: false, afterNumber: true },
  { long: ['feet'], short: 'ft', expand: true },
  { long: ['foot'], short: 'ft', expand: false },
  { long: ['pound'], short: 'lb', expand: true },
  { long: ['pounds'], short: 'lbs', expand: true },
  { long: ['gallon'], short: 'gal', expand: true },
  { long: ['gallons'], short: 'gal', expand: false },
  { long: ['ounce'], short: 'oz', expand: true },
  { long: ['quart'], short: 'qt', expand: true },
  { long: ['square'], short: 'sq', expand: true },
  { long: ['cubic', 'feet'], short: 'cu ft', expand: true },
  { long: ['package'], short: 'pkg', expand: true },
  { long: ['pack'], short: 'pk', expand: true },
  { long: ['with'], short: 'w/', expand: true },
  { long: ['and'], short: '&', expand: true },
  { long: ['stainless', 'steel'], short: 'ss', expand: true },
  { long: ['light', 'emitting', 'diode'], short: 'led', expand: false },
  { long: ['polyvinyl', 'chloride'], short: 'pvc', expand: false },
  { long: ['pressure', 'treated'], short: 'pt', expand: false },
  { long: ['galvanized'], short: 'galv', expand: true },
  { long: ['aluminum'], short: 'alum', expand: true },
  { long: ['diameter'], short: 'dia', expand: true },
  { long: ['volt'], short: 'v', expand: true, afterNumber: true },
  { long: ['watt'], short: 'w', expand: true, afterNumber: true },
  { long: ['horsepower'], short: 'hp', expand: true },
  { long: ['millimeter'], short: 'mm', expand: true },
];

// After a number, inches and feet are also written as marks: 2 in -> 2", 8 ft -> 8'.
const UNIT_MARKS: readonly { words: readonly string[]; mark: string; spelled: string }[] = [
  { words: ['in', 'inch', 'inches'], mark: '"', spelled: 'in' },
  { words: ['ft', 'foot', 'feet'], mark: "'", spelled: 'ft' },
];

// Function words: never the head noun, never pluralised, and a title phrase does not start or end on them.
const STOPWORDS = new Set(['a', 'an', 'and', 'as', 'at', 'by', 'for', 'from', 'in', 'into', 'of', 'on', 'or', 'per', 'the', 'to', 'under', 'with', 'without', 'w/', 'x', '&', '-', '/', '+']);

const hasDigit = (w: string): boolean => /\d/.test(w);
const isLetters = (w: string, min: number): boolean => w.length >= min && /^[a-z]+$/i.test(w);
const bare = (w: string): string => w.toLowerCase().replace(/\.$/, '');
const isNumber = (w: string | undefined): boolean => w !== undefined && /^\d+([./-]\d+)*$/.test(w);
/** The digit runs of a text, in order: an edit is only allowed if it leaves them exactly as they were. */
const digitRuns = (text: string): string => (text.match(/\d+/g) ?? []).join(',');

/** Whitespace collapsed, trimmed: the form a clean text is compared and edited in. */
export function normaliseSpaces(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function withCase(original: string, replacement: string): string {
  return original === original.toUpperCase() && original !== original.toLowerCase() ? replacement.toUpperCase() : replacement;
}

/** Index of a random word that satisfies `ok`, or -1. */
function pickWord(words: readonly string[], rng: () => number, ok: (w: string, i: number) => boolean): number {
  const candidates = words.map((w, i) => (ok(w, i) ? i : -1)).filter((i) => i >= 0);
  return candidates.length ? pick(rng, candidates) : -1;
}

function replaceWord(words: readonly string[], i: number, ...replacement: string[]): string[] {
  return [...words.slice(0, i), ...replacement, ...words.slice(i + 1)];
}

// Letter-level edits touch only all-letter words, so a token with a digit ("2x4", "3/4", "r-13") never
// changes; 3+ letters keeps the word recognisable after the slip.
function keyboard(words: readonly string[], rng: () => number): string[] | null {
  const i = pickWord(words, rng, (w) => isLetters(w, 3));
  if (i < 0) return null;
  const w = words[i];
  const at = Math.floor(rng() * w.length);
  const neighbour = pick(rng, [...QWERTY_NEIGHBOURS[w[at].toLowerCase()]]);
  const key = w[at] === w[at].toUpperCase() ? neighbour.toUpperCase() : neighbour;
  return replaceWord(words, i, w.slice(0, at) + key + w.slice(at + 1));
}

function dropLetter(words: readonly string[], rng: () => number): string[] | null {
  // Never the first letter: shoppers rarely miss it, and without it the word is hard to recognise.
  const i = pickWord(words, rng, (w) => isLetters(w, 4));
  if (i < 0) return null;
  const w = words[i];
  const at = 1 + Math.floor(rng() * (w.length - 1));
  return replaceWord(words, i, w.slice(0, at) + w.slice(at + 1));
}

function doubleLetter(words: readonly string[], rng: () => number): string[] | null {
  const i = pickWord(words, rng, (w) => isLetters(w, 3));
  if (i < 0) return null;
  const w = words[i];
  const at = Math.floor(rng() * w.length);
  return replaceWord(words, i, w.slice(0, at + 1) + w.slice(at));
}

function swapLetters(words: readonly string[], rng: () => number): string[] | null {
  // Only adjacent letters that differ: swapping "oo" in "door" would change nothing.
  const canSwap = (w: string): number[] => [...w.slice(0, -1)].map((c, k) => (c.toLowerCase() !== w[k + 1].toLowerCase() ? k : -1)).filter((k) => k >= 0);
  const i = pickWord(words, rng, (w) => isLetters(w, 3) && canSwap(w).length > 0);
  if (i < 0) return null;
  const w = words[i];
  const at = pick(rng, canSwap(w));
  return replaceWord(words, i, w.slice(0, at) + w[at + 1] + w[at] + w.slice(at + 2));
}

function dropWord(words: readonly string[], rng: () => number): string[] | null {
  // At least two words must remain; numbers and the unit after one stay (without them "8 ft" is another
  // request), and so does the last word, the head noun: shoppers leave out modifiers, not the product.
  if (words.length < 3) return null;
  const i = pickWord(words, rng, (w, k) => !hasDigit(w) && !hasDigit(words[k - 1] ?? '') && k < words.length - 1);
  return i < 0 ? null : replaceWord(words, i);
}

function mergeWords(words: readonly string[], rng: () => number): string[] | null {
  // "2 4" -> "24" would make a new number: never join two digits (the digit-run check backs this up).
  const boundaries = words.slice(0, -1).map((w, i) => (/\d$/.test(w) && /^\d/.test(words[i + 1]) ? -1 : i)).filter((i) => i >= 0);
  if (!boundaries.length) return null;
  const i = pick(rng, boundaries);
  return [...words.slice(0, i), words[i] + words[i + 1], ...words.slice(i + 2)];
}

/** Every way the abbreviation table (and the inch/foot marks) can rewrite `words`, as candidate results. */
function abbreviationSites(words: readonly string[]): string[][] {
  const out: string[][] = [];
  const lower = words.map(bare);
  for (let i = 0; i < words.length; i++) {
    for (const a of ABBREVIATIONS) {
      const n = a.long.length;
      const afterNumberOk = !a.afterNumber || isNumber(words[i - 1]);
      if (afterNumberOk && a.long.every((w, k) => lower[i + k] === w)) {
        out.push([...words.slice(0, i), ...a.short.split(' ').map((s) => withCase(words[i], s)), ...words.slice(i + n)]);
      }
      const short = a.short.split(' ');
      if (a.expand && afterNumberOk && short.every((w, k) => lower[i + k] === w)) {
        out.push([...words.slice(0, i), ...a.long.map((s) => withCase(words[i], s)), ...words.slice(i + short.length)]);
      }
    }
    for (const u of UNIT_MARKS) {
      // "2 in" -> `2"`; and back: `2"` -> "2 in".
      if (i > 0 && isNumber(words[i - 1]) && u.words.includes(lower[i])) out.push([...words.slice(0, i - 1), words[i - 1] + u.mark, ...words.slice(i + 1)]);
      if (words[i].endsWith(u.mark) && isNumber(words[i].slice(0, -1))) out.push([...words.slice(0, i), words[i].slice(0, -1), u.spelled, ...words.slice(i + 1)]);
    }
  }
  return out;
}

function abbreviation(words: readonly string[], rng: () => number): string[] | null {
  const sites = abbreviationSites(words);
  return sites.length ? pick(rng, sites) : null;
}

/** The other grammatical number of an English noun, by the regular rules; null where they would misfire. */
export function togglePlural(word: string): string | null {
  const w = word.toLowerCase();
  if (!isLetters(w, 3) || STOPWORDS.has(w) || ABBREVIATIONS.some((a) => a.short === w)) return null;
  let out: string;
  if (/[^aeiou]ies$/.test(w) && w.length > 4) out = `${w.slice(0, -3)}y`;
  else if (/(ches|shes|xes|sses|zzes)$/.test(w)) out = w.slice(0, -2);
  else if (/s$/.test(w)) {
    // "glass", "gas", "cactus", "chassis", "kudos" end in s without being plurals.
    if (/(ss|us|is|as|os)$/.test(w)) return null;
    out = w.slice(0, -1);
  } else if (/[^aeiou]y$/.test(w)) out = `${w.slice(0, -1)}ies`;
  else if (/(x|z|ch|sh)$/.test(w)) out = `${w}es`;
  else out = `${w}s`;
  return withCase(word, out);
}

function plural(words: readonly string[]): string[] | null {
  // The head noun of a product query is its last content word ("cordless drill bits"): toggling an
  // adjective ("cordlesses") is not a slip anyone makes.
  for (let i = words.length - 1; i >= 0; i--) {
    if (STOPWORDS.has(bare(words[i])) || hasDigit(words[i])) continue;
    const t = togglePlural(words[i]);
    return t === null ? null : replaceWord(words, i, t);
  }
  return null;
}

const OPERATORS: Readonly<Record<NoiseKind, (words: readonly string[], rng: () => number) => string[] | null>> = {
  'keyboard': keyboard,
  'drop-letter': dropLetter,
  'double-letter': doubleLetter,
  'swap-letters': swapLetters,
  'drop-word': dropWord,
  'merge-words': mergeWords,
  'abbreviation': abbreviation,
  'plural': plural,
};

/**
 * One edit of kind `kind` on `text` (whitespace normalised first), or null when the kind does not apply
 * (no eligible word) or would change a number. The result always differs from the normalised input.
 */
export function applyNoise(kind: NoiseKind, text: string, rng: () => number): string | null {
  const op = OPERATORS[kind];
  if (!op) throw invalidArgument(`unknown noise kind "${String(kind)}"; use one of ${NOISE_KINDS.join(', ')}`);
  const clean = normaliseSpaces(text);
  if (!clean) return null;
  const words = op(clean.split(' '), rng);
  if (!words) return null;
  const out = words.join(' ');
  return out !== clean && digitRuns(out) === digitRuns(clean) ? out : null;
}

function checkNoiseOptions(o: NoiseOptions): { minEdits: number; maxEdits: number; weights: Record<NoiseKind, number> } {
  const minEdits = o.minEdits ?? 1;
  const maxEdits = o.maxEdits ?? Math.max(2, minEdits);
  if (!Number.isInteger(minEdits) || minEdits < 1) throw invalidArgument(`noise option minEdits must be an integer >= 1, got ${o.minEdits}`);
  if (!Number.isInteger(maxEdits) || maxEdits < minEdits) throw invalidArgument(`noise option maxEdits must be an integer >= minEdits (${minEdits}), got ${o.maxEdits}`);
  if (maxEdits > NOISE_KINDS.length) throw invalidArgument(`noise option maxEdits is ${maxEdits}, but each of the ${NOISE_KINDS.length} kinds is used at most once per text; lower it`);
  const weights = { ...DEFAULT_NOISE_WEIGHTS, ...o.weights };
  for (const [k, v] of Object.entries(weights)) {
    if (!(NOISE_KINDS as readonly string[]).includes(k)) throw invalidArgument(`noise option weights has unknown kind "${k}"; use ${NOISE_KINDS.join(', ')}`);
    if (!(Number.isFinite(v) && v >= 0)) throw invalidArgument(`noise option weights.${k} must be a finite number >= 0, got ${v}`);
  }
  if (NOISE_KINDS.every((k) => weights[k] === 0)) throw invalidArgument('noise option weights turns every kind off; give at least one a positive weight');
  return { minEdits, maxEdits, weights };
}

/**
 * Realistic shopper noise on `text`: between minEdits and maxEdits edits (default 1-2), kinds drawn by
 * weight, each kind at most once (so no edit undoes another of its kind). Numbers are never changed.
 * Returns null when no edit applies (e.g. "2x4"); otherwise the noisy text differs from the input.
 */
export function addQueryNoise(text: string, rng: () => number, options: NoiseOptions = {}): NoisyText | null {
  const { minEdits, maxEdits, weights } = checkNoiseOptions(options);
  const clean = normaliseSpaces(text);
  if (!clean) return null;
  const wanted = minEdits + Math.floor(rng() * (maxEdits - minEdits + 1));
  // A later edit can undo an earlier one of another kind ("drill" -> "dril" -> "drill"): try again then.
  for (let attempt = 0; attempt < 4; attempt++) {
    let current = clean;
    const kinds: NoiseKind[] = [];
    let open = NOISE_KINDS.filter((k) => weights[k] > 0);
    while (kinds.length < wanted && open.length) {
      const total = open.reduce((s, k) => s + weights[k], 0);
      let r = rng() * total;
      const kind = open.find((k) => (r -= weights[k]) < 0) ?? open[open.length - 1];
      open = open.filter((k) => k !== kind);
      const next = applyNoise(kind, current, rng);
      if (next === null) continue;
      current = next;
      kinds.push(kind);
    }
    if (kinds.length && current !== clean) return { text: current, kinds };
    if (!kinds.length) return null;
  }
  return null;
}

/** Common HTML entities in catalog text (Home Depot titles say "Briggs &amp; Stratton"). */
export function decodeEntities(text: string): string {
  return text.replace(/&(amp|quot|#39|apos|lt|gt);/g, (_, e: string) => ({ amp: '&', quot: '"', '#39': "'", apos: "'", lt: '<', gt: '>' })[e] ?? _);
}

/** A title as a shopper would type part of it: lowercase, no brackets, commas, trademark signs or trailing dots. */
export function titleWords(title: string): string[] {
  // Thousands separators go first ("12,000 btu" is typed "12000 btu"), so no window starts with "000".
  return normaliseSpaces(decodeEntities(title).toLowerCase().replace(/(\d),(\d)/g, '$1$2').replace(/[()[\]{},;:!?®™©*|]/g, ' '))
    .split(' ')
    .map((w) => w.replace(/\.+$/, ''))
    .filter((w) => w.length > 0 && w !== '-');
}

/**
 * A window of `minWords`-`maxWords` consecutive words of a title, trimmed of function words at both
 * ends ("with 2 in" is not how a query starts); null when fewer than `minWords` remain.
 */
export function titlePhrase(title: string, rng: () => number, minWords = 2, maxWords = 5): string | null {
  const words = titleWords(title);
  if (words.length < minWords) return null;
  const n = Math.min(words.length, minWords + Math.floor(rng() * (maxWords - minWords + 1)));
  const start = Math.floor(rng() * (words.length - n + 1));
  const window = words.slice(start, start + n);
  while (window.length && STOPWORDS.has(window[0])) window.shift();
  while (window.length && STOPWORDS.has(window[window.length - 1])) window.pop();
  return window.length >= minWords ? window.join(' ') : null;
}

export interface DenoisingOptions {
  /** Real training-split queries (never test queries: the pairs are training data). */
  queries: readonly string[];
  /** Product titles; 2-5 word windows of them become clean texts too. */
  titles?: readonly string[];
  /** Pairs wanted. Fewer come back when the inputs cannot make that many distinct noisy texts. */
  count: number;
  seed: number;
  /** Share of pairs taken from title phrases when both sources are given (default 0.5). */
  titleShare?: number;
  /** Title window length in words (default 2-5, the length of a typical query). */
  minWords?: number;
  maxWords?: number;
  noise?: NoiseOptions;
}

/**
 * `{query: noisy, rewrite: clean}` pairs from real queries and title phrases. Same inputs and seed give
 * the same pairs; noisy texts are unique (one clean target each) and never equal their clean text.
 */
export function denoisingPairs(o: DenoisingOptions): DenoisingPair[] {
  if (!Number.isInteger(o.count) || o.count < 0) throw invalidArgument(`denoisingPairs: count must be an integer >= 0, got ${o.count}`);
  const titleShare = o.titleShare ?? 0.5;
  if (!(titleShare >= 0 && titleShare <= 1)) throw invalidArgument(`denoisingPairs: titleShare must be in [0, 1], got ${o.titleShare}`);
  const minWords = o.minWords ?? 2;
  const maxWords = o.maxWords ?? 5;
  if (!Number.isInteger(minWords) || minWords < 1 || !Number.isInteger(maxWords) || maxWords < minWords) {
    throw invalidArgument(`denoisingPairs: minWords/maxWords must be integers with 1 <= minWords <= maxWords, got ${o.minWords}/${o.maxWords}`);
  }
  checkNoiseOptions(o.noise ?? {});
  const queries = [...new Set(o.queries.map(normaliseSpaces).filter((q) => q.length > 0))];
  const titles = (o.titles ?? []).filter((t) => t.trim().length > 0);
  if (o.count > 0 && !queries.length && !titles.length) throw invalidArgument('denoisingPairs needs queries or titles to add noise to; both are empty');
  const rng = createRng(o.seed);
  const out: DenoisingPair[] = [];
  const seen = new Set<string>();
  // Short lists run out of distinct noisy texts; stop after a bounded number of misses instead of spinning.
  const maxAttempts = o.count * 10 + 100;
  for (let attempt = 0; out.length < o.count && attempt < maxAttempts; attempt++) {
    const fromTitle = titles.length > 0 && (queries.length === 0 || rng() < titleShare);
    const clean = fromTitle ? titlePhrase(pick(rng, titles), rng, minWords, maxWords) : pick(rng, queries);
    if (!clean) continue;
    const noisy = addQueryNoise(clean, rng, o.noise);
    if (!noisy || noisy.text === clean || seen.has(noisy.text)) continue;
    seen.add(noisy.text);
    out.push({ query: noisy.text, rewrite: clean });
  }
  return out;
}

/**
 * Default share of denoising pairs in the SFT training set. A quarter: enough that the model sees every
 * kind of slip many times and learns the catalog's spelling (the real pairs alone are a few thousand),
 * while three quarters of the gradient still comes from real Q2Q rewrites, so the model does not drift
 * toward copying its input (denoising targets are near-copies, and the online stage rewards diversity).
 */
export const DEFAULT_DENOISE_RATIO = 0.25;

/** How many denoising pairs make them `ratio` of a training set that has `real` real pairs. */
export function denoisingCount(real: number, ratio: number): number {
  if (!(ratio >= 0 && ratio < 1)) throw invalidArgument(`the denoising ratio must be in [0, 1) (the share of denoising pairs in the mix), got ${ratio}`);
  return Math.round((real * ratio) / (1 - ratio));
}

/**
 * All real pairs plus enough denoising pairs (a seeded sample) that they make up `ratio` of the result,
 * shuffled with `seed`. With fewer denoising pairs than that, all of them are used and their share is
 * lower: generate `denoisingCount(real.length, ratio)` of them to hit the ratio exactly.
 */
export function mixPairs<P extends DenoisingPair>(real: readonly P[], denoising: readonly P[], ratio: number, seed: number): P[] {
  const want = denoisingCount(real.length, ratio);
  const rng = createRng(seed);
  const chosen = want >= denoising.length ? [...denoising] : shuffleInPlace(rng, [...denoising]).slice(0, want);
  return shuffleInPlace(rng, [...real, ...chosen]);
}
