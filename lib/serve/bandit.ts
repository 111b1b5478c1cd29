// Which of a query's rewrites to send to the engine, learned from clicks (LTR&R: learning to rank AND retrieve
// with a contextual bandit over the retrieval candidates).
//
// Arms. One arm per (normalised query, normalised rewrite): trimmed, whitespace collapsed, lower-cased, the
// form Rewriter dedupes in. Its reward is Bernoulli: a product that rewrite brought was clicked (success),
// or the rewrite's products were shown and none was clicked (failure). One feedback per impression per arm.
//
// Thompson sampling. select() draws θ ~ Beta(α, β) for every candidate and sends the `count` largest draws
// (ties: the better-ranked candidate). The posterior of an arm with s successes and f failures is
//     Beta(w·m + s, w·(1 − m) + f)
// where w = priorWeight pseudo-observations (default 2) and m is the shared prior mean below: an arm never
// seen for this query starts from what similar arms achieved, with the confidence of w observations, and its
// own evidence takes over as it accrues.
//
// Backoff prior, shared across queries. "Similar arms" are the rewrites offered at the same rank of the n-best
// list (rank 1 = the decoder's best beam), for every query: rank is what every rewrite of every query has, and
// the decoder's rank carries most of what is known about an unseen rewrite. Two levels, each leave-one-out (an
// arm's own feedback is not counted twice, in its prior and in its likelihood):
//     m0 = (a0 + S − s) / (a0 + b0 + S + F − s − f)                     all feedback (S, F), base prior Beta(a0, b0)
//     m  = (S_r − s_r + w·m0) / (S_r + F_r − s_r − f_r + w)             feedback at rank r, shrunk towards m0
// (s_r, f_r: the arm's own feedback recorded at its current rank). A rank no one has clicked at yet gets the
// global rate; a brand-new bandit gets a0 / (a0 + b0) = 1/2 (Beta(1, 1) by default). An arm's rank is the one
// it was last offered at; its later feedback counts towards that rank's pool.
//
// Bounded memory. At most maxArms arms (default 100,000; about 150 bytes each plus the two texts) in least-
// recently-used order: select() and update() touch an arm, and the least recently used one is forgotten when a
// new arm would exceed the cap (its feedback stays in the rank and global pools). Rank pools are at most
// MAX_RANK, so the state is O(maxArms) whatever the traffic.
//
// Determinism. All draws come from one seeded generator (mulberry32) whose state is saved with the arms: the
// same seed and the same sequence of select() / update() calls give the same choices, also across a save and
// load. The state file is JSON with a format and a version field, written atomically (temporary file, fsync,
// rename); save() calls that arrive while a write runs share the next write.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MinielmError, describeValue, invalidArgument } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const BANDIT_FORMAT = 'minielm-bandit';
export const BANDIT_VERSION = 1;
/** Ranks pooled separately; candidates further down share the last pool. */
export const MAX_RANK = 64;

export interface BanditOptions {
  /** Seeds the Thompson draws of a new bandit (a loaded one continues its saved stream). Default 1. */
  seed?: number;
  /** Arms kept at most, least recently used forgotten first. Default 100,000. */
  maxArms?: number;
  /** Pseudo-observations the shared (rank, then global) prior is worth in an arm's posterior. Default 2. */
  priorWeight?: number;
  /** Beta(a0, b0) under everything, before any feedback. Default [1, 1]. */
  basePrior?: readonly [number, number];
  /** Where save() writes (and Bandit.open reads). */
  stateFile?: string;
}

/** What the bandit believes about one arm. */
export interface ArmPosterior {
  query: string;
  rewrite: string;
  /** 1-based rank the arm was last offered at (its prior pool). */
  rank: number;
  successes: number;
  failures: number;
  /** The shared prior it starts from: Beta(priorAlpha, priorBeta). */
  priorAlpha: number;
  priorBeta: number;
  /** The posterior Beta(alpha, beta) and its mean. */
  alpha: number;
  beta: number;
  mean: number;
}

export interface BanditSelection {
  /** Indices into the candidates, largest draw first; `count` of them (fewer when fewer distinct candidates). */
  chosen: number[];
  /** The Thompson draw of every candidate (NaN for a repeat of an earlier candidate, never chosen). */
  samples: number[];
}

export interface BanditStats {
  arms: number;
  maxArms: number;
  /** Feedback events taken, and their successes. */
  updates: number;
  successes: number;
  /** Arms forgotten to stay within maxArms. */
  evicted: number;
  /** Per rank (1-based): feedback successes and failures pooled across queries. */
  ranks: { rank: number; successes: number; failures: number }[];
}

interface Arm {
  s: number;
  f: number;
  /** 1-based rank last offered at. */
  rank: number;
  /** This arm's feedback recorded at `rank` (subtracted from that pool in its own prior). */
  rs: number;
  rf: number;
}

interface Settings {
  maxArms: number;
  priorWeight: number;
  a0: number;
  b0: number;
}

/** The saved state, as JSON. Arms oldest (least recently used) first. */
interface BanditState {
  format: typeof BANDIT_FORMAT;
  version: number;
  seed: number;
  rng: number;
  settings: { maxArms: number; priorWeight: number; basePrior: [number, number] };
  updates: number;
  evicted: number;
  total: [number, number];
  /** [successes, failures] per rank, index 0 = rank 1. */
  ranks: [number, number][];
  /** [query, rewrite, successes, failures, rank, successes at rank, failures at rank]. */
  arms: [string, string, number, number, number, number, number][];
}

const OPTION_KEYS = ['seed', 'maxArms', 'priorWeight', 'basePrior', 'stateFile'];

/** The form queries and rewrites are keyed in: trimmed, whitespace collapsed, lower-cased. */
export function normaliseArmText(text: string): string {
  return text.trim().replace(/\s+/g, ' ').toLowerCase();
}

function checkOptions(options: BanditOptions | undefined, where: string): BanditOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument(`${where}: options must be an object, got ${describeValue(options)}`);
  for (const key of Object.keys(options)) if (!OPTION_KEYS.includes(key)) throw invalidArgument(`${where}: unknown option "${key}"; the options are ${OPTION_KEYS.join(', ')}`);
  const o = options;
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0)) throw invalidArgument(`${where}: seed must be a non-negative integer, got ${describeValue(o.seed)}`);
  if (o.maxArms !== undefined && !(Number.isSafeInteger(o.maxArms) && o.maxArms >= 1 && o.maxArms <= 100_000_000))
    throw invalidArgument(`${where}: maxArms must be an integer in [1, 100000000], got ${describeValue(o.maxArms)}`);
  if (o.priorWeight !== undefined && !(typeof o.priorWeight === 'number' && Number.isFinite(o.priorWeight) && o.priorWeight > 0 && o.priorWeight <= 1e6))
    throw invalidArgument(`${where}: priorWeight must be a number in (0, 1e6] (pseudo-observations of the shared prior), got ${describeValue(o.priorWeight)}`);
  if (o.basePrior !== undefined) {
    const b = o.basePrior;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= 1e6))
      throw invalidArgument(`${where}: basePrior must be [a0, b0], two numbers in (0, 1e6], got ${describeValue(b)}`);
  }
  if (o.stateFile !== undefined && (typeof o.stateFile !== 'string' || o.stateFile.length === 0)) throw invalidArgument(`${where}: stateFile must be a file path, got ${describeValue(o.stateFile)}`);
  return o;
}

/** Marsaglia & Tsang's Gamma(shape, 1), with the U^(1/a) boost below shape 1. */
function gamma(shape: number, uniform: () => number): number {
  if (shape < 1) {
    const u = Math.max(uniform(), Number.MIN_VALUE);
    return gamma(shape + 1, uniform) * u ** (1 / shape);
  }
  const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      // Box-Muller, one normal per pair of uniforms (simpler to keep deterministic than caching the twin).
      const u1 = Math.max(uniform(), Number.MIN_VALUE), u2 = uniform();
      x = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = uniform();
    if (u < 1 - 0.0331 * x * x * x * x || Math.log(Math.max(u, Number.MIN_VALUE)) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

function armKey(query: string, rewrite: string): string {
  return `${query}\u0000${rewrite}`;
}

export class Bandit {
  readonly seed: number;
  #settings: Settings;
  #stateFile: string | undefined;
  #rng: number;
  /** Insertion order = least recently used first. */
  #arms = new Map<string, Arm>();
  #ranks: [number, number][] = [];
  #total: [number, number] = [0, 0];
  #updates = 0;
  #evicted = 0;
  #writing: Promise<void> | null = null;
  #queued: Promise<void> | null = null;

  constructor(options?: BanditOptions) {
    const o = checkOptions(options, 'Bandit');
    this.seed = o.seed ?? 1;
    this.#rng = (this.seed ^ 0x9e3779b9) >>> 0;
    const [a0, b0] = o.basePrior ?? [1, 1];
    this.#settings = { maxArms: o.maxArms ?? 100_000, priorWeight: o.priorWeight ?? 2, a0, b0 };
    this.#stateFile = o.stateFile;
  }

  /** Reads a state file written by save(); options given here override the saved settings. */
  static async load(file: string, options?: BanditOptions): Promise<Bandit> {
    if (typeof file !== 'string' || file.length === 0) throw invalidArgument(`Bandit.load needs the path of a bandit state file, got ${describeValue(file)}`);
    const o = checkOptions(options, 'Bandit.load');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new MinielmError(code === 'ENOENT' ? 'MINIELM_NOT_FOUND' : 'MINIELM_BAD_FILE', `bandit state file "${file}": cannot read it (${(err as Error).message}); use Bandit.open to start a new one there`, { cause: err });
    }
    return Bandit.#fromText(file, text, o);
  }

  /** load(stateFile) when the file exists, else a new bandit that will save there. */
  static async open(stateFile: string, options?: Omit<BanditOptions, 'stateFile'>): Promise<Bandit> {
    if (typeof stateFile !== 'string' || stateFile.length === 0) throw invalidArgument(`Bandit.open needs the path of a bandit state file, got ${describeValue(stateFile)}`);
    const o = checkOptions(options, 'Bandit.open');
    try {
      return await Bandit.load(stateFile, { ...o, stateFile });
    } catch (err) {
      if (err instanceof MinielmError && err.code === 'MINIELM_NOT_FOUND') return new Bandit({ ...o, stateFile });
      throw err;
    }
  }

  static #fromText(file: string, text: string, o: BanditOptions): Bandit {
    const bad = (what: string): MinielmError =>
      new MinielmError('MINIELM_BAD_FILE', `bandit state file "${file}": ${what}. It was not written by Bandit.save (or was damaged); move it away to start a new bandit, or restore a backup.`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw bad(`not valid JSON (${(err as Error).message})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad('not a JSON object');
    const s = json as Partial<BanditState>;
    if (s.format !== BANDIT_FORMAT) throw bad(`format is ${describeValue(s.format)}, not "${BANDIT_FORMAT}"`);
    if (typeof s.version !== 'number') throw bad('it has no version field');
    if (s.version !== BANDIT_VERSION) throw bad(`version ${s.version} is not the version this minielm reads (${BANDIT_VERSION})${s.version > BANDIT_VERSION ? ': a newer minielm wrote it' : ''}`);
    const count = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
    const pair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && count(v[0]) && count(v[1]);
    if (!Number.isSafeInteger(s.seed) || (s.seed as number) < 0) throw bad('seed is not a non-negative integer');
    if (!Number.isInteger(s.rng) || (s.rng as number) < 0 || (s.rng as number) > 0xffffffff) throw bad('rng is not a 32-bit state');
    const st = s.settings;
    if (!st || typeof st !== 'object') throw bad('settings are missing');
    let saved: BanditOptions;
    try {
      saved = checkOptions({ maxArms: st.maxArms, priorWeight: st.priorWeight, basePrior: st.basePrior }, 'settings');
    } catch (err) {
      throw bad((err as Error).message);
    }
    if (!count(s.updates) || !count(s.evicted)) throw bad('updates / evicted are not counts');
    if (!pair(s.total)) throw bad('total is not [successes, failures]');
    if (!Array.isArray(s.ranks) || s.ranks.length > MAX_RANK) throw bad(`ranks is not a list of at most ${MAX_RANK} [successes, failures] pairs`);
    s.ranks.forEach((r, i) => {
      if (!pair(r)) throw bad(`ranks[${i}] is not [successes, failures]`);
    });
    if (!Array.isArray(s.arms)) throw bad('arms is not a list');
    const bandit = new Bandit({ ...saved, ...o, seed: s.seed });
    bandit.#rng = s.rng as number;
    bandit.#updates = s.updates;
    bandit.#evicted = s.evicted;
    bandit.#total = [s.total[0], s.total[1]];
    bandit.#ranks = s.ranks.map((r) => [r[0], r[1]]);
    s.arms.forEach((a, i) => {
      if (!Array.isArray(a) || a.length !== 7 || typeof a[0] !== 'string' || typeof a[1] !== 'string' || !count(a[2]) || !count(a[3]) ||
        !Number.isInteger(a[4]) || a[4] < 1 || a[4] > MAX_RANK || !count(a[5]) || !count(a[6]) || a[5] > a[2] || a[6] > a[3])
        throw bad(`arms[${i}] is not [query, rewrite, successes, failures, rank, successes at rank, failures at rank]`);
      bandit.#arms.set(armKey(a[0], a[1]), { s: a[2], f: a[3], rank: a[4], rs: a[5], rf: a[6] });
    });
    bandit.#evict();
    return bandit;
  }

  get stateFile(): string | undefined {
    return this.#stateFile;
  }

  get size(): number {
    return this.#arms.size;
  }

  /**
   * Thompson-samples every candidate (rewrites of `query`, best-ranked first) and picks the `count` largest
   * draws. Candidates repeated (after normalisation) are sampled once, at their first rank.
   */
  select(query: string, candidates: readonly string[], count: number): BanditSelection {
    const q = this.#checkText('select: query', query);
    if (!Array.isArray(candidates)) throw invalidArgument(`select: candidates must be an array of rewrite texts, got ${describeValue(candidates)}`);
    if (!Number.isSafeInteger(count) || count < 1) throw invalidArgument(`select: count must be an integer >= 1, got ${describeValue(count)}`);
    const seen = new Set<string>();
    const samples = candidates.map((c, i) => {
      const r = this.#checkText(`select: candidates[${i}]`, c);
      if (seen.has(r)) return NaN;
      seen.add(r);
      const rank = Math.min(i + 1, MAX_RANK);
      const key = armKey(q, r);
      const arm = this.#arms.get(key);
      if (arm) {
        if (arm.rank !== rank) Object.assign(arm, { rank, rs: 0, rf: 0 });
        this.#touch(key, arm);
      }
      const { alpha, beta } = this.#posterior(arm, rank);
      const x = gamma(alpha, () => this.#uniform());
      const y = gamma(beta, () => this.#uniform());
      return x + y > 0 ? x / (x + y) : alpha / (alpha + beta);
    });
    const order = samples.map((v, i) => i).filter((i) => !Number.isNaN(samples[i]));
    order.sort((a, b) => samples[b] - samples[a] || a - b);
    const chosen = order.slice(0, count);
    // The chosen arms are the ones feedback may come for: remember them.
    for (const i of chosen) {
      const key = armKey(q, normaliseArmText(candidates[i]));
      if (!this.#arms.has(key)) {
        this.#arms.set(key, { s: 0, f: 0, rank: Math.min(i + 1, MAX_RANK), rs: 0, rf: 0 });
        this.#evict();
      }
    }
    return { chosen, samples };
  }

  /**
   * One impression's outcome for an arm that select() chose: clicked = a product it brought was clicked.
   * Throws MINIELM_INVALID_ARGUMENT for an arm the bandit does not hold (never chosen, or forgotten).
   */
  update(query: string, rewrite: string, clicked: boolean): ArmPosterior {
    const q = this.#checkText('feedback: query', query);
    const r = this.#checkText('feedback: rewrite', rewrite);
    if (typeof clicked !== 'boolean') throw invalidArgument(`feedback: clicked must be true or false, got ${describeValue(clicked)}`);
    const key = armKey(q, r);
    const arm = this.#arms.get(key);
    if (!arm) {
      throw invalidArgument(
        `feedback: the bandit holds no arm for query ${describeValue(q)} and rewrite ${describeValue(r)}: pass a rewrite that expand({ select: 'bandit' }) sent ` +
          `for that query (expansion.rewrites[i].text), after that expand (or it was forgotten: the ${this.#settings.maxArms} most recently used arms are kept, maxArms)`,
      );
    }
    const rank = this.#rankPool(arm.rank);
    const i = clicked ? 0 : 1;
    if (clicked) (arm.s++, arm.rs++);
    else (arm.f++, arm.rf++);
    rank[i]++;
    this.#total[i]++;
    this.#updates++;
    this.#touch(key, arm);
    return this.#describe(q, r, arm, arm.rank);
  }

  /** The posterior of (query, rewrite) offered at `rank`; an arm the bandit does not hold gets the shared prior. */
  posterior(query: string, rewrite: string, rank = 1): ArmPosterior {
    const q = this.#checkText('posterior: query', query);
    const r = this.#checkText('posterior: rewrite', rewrite);
    if (!Number.isSafeInteger(rank) || rank < 1) throw invalidArgument(`posterior: rank must be an integer >= 1, got ${describeValue(rank)}`);
    const arm = this.#arms.get(armKey(q, r));
    return this.#describe(q, r, arm, arm?.rank ?? Math.min(rank, MAX_RANK));
  }

  /** Whether select() has chosen (query, rewrite) and the bandit still holds it. */
  has(query: string, rewrite: string): boolean {
    return typeof query === 'string' && typeof rewrite === 'string' && this.#arms.has(armKey(normaliseArmText(query), normaliseArmText(rewrite)));
  }

  stats(): BanditStats {
    return {
      arms: this.#arms.size,
      maxArms: this.#settings.maxArms,
      updates: this.#updates,
      successes: this.#total[0],
      evicted: this.#evicted,
      ranks: this.#ranks.map(([s, f], i) => ({ rank: i + 1, successes: s, failures: f })),
    };
  }

  /** The state save() writes. */
  toJSON(): BanditState {
    const { maxArms, priorWeight, a0, b0 } = this.#settings;
    const arms: BanditState['arms'] = [];
    for (const [key, a] of this.#arms) {
      const cut = key.indexOf('\u0000');
      arms.push([key.slice(0, cut), key.slice(cut + 1), a.s, a.f, a.rank, a.rs, a.rf]);
    }
    return {
      format: BANDIT_FORMAT, version: BANDIT_VERSION, seed: this.seed, rng: this.#rng,
      settings: { maxArms, priorWeight, basePrior: [a0, b0] },
      updates: this.#updates, evicted: this.#evicted, total: [...this.#total], ranks: this.#ranks.map((r) => [r[0], r[1]]), arms,
    };
  }

  /**
   * Writes the state atomically to `file` (default: stateFile). Calls made while a write to stateFile runs
   * share the next write, which holds everything up to its start.
   */
  save(file?: string): Promise<void> {
    if (file !== undefined && (typeof file !== 'string' || file.length === 0)) return Promise.reject(invalidArgument(`save: file must be a path, got ${describeValue(file)}`));
    const target = file ?? this.#stateFile;
    if (!target) return Promise.reject(invalidArgument('save: this bandit has no stateFile; pass a path (bandit.save(file)) or create it with { stateFile }'));
    if (target !== this.#stateFile) return this.#write(target);
    if (this.#queued) return this.#queued;
    if (!this.#writing) return this.#startWrite(target);
    this.#queued = this.#writing.catch(() => undefined).then(() => {
      this.#queued = null;
      return this.#startWrite(target);
    });
    return this.#queued;
  }

  /** Resolves once no save to stateFile is running or queued. */
  async flush(): Promise<void> {
    while (this.#writing || this.#queued) await (this.#queued ?? this.#writing)!.catch(() => undefined);
  }

  #startWrite(target: string): Promise<void> {
    const writing = this.#write(target).finally(() => {
      if (this.#writing === writing) this.#writing = null;
    });
    this.#writing = writing;
    return writing;
  }

  async #write(target: string): Promise<void> {
    // Serialised now, so the file holds every update made before this call.
    const text = `${JSON.stringify(this.toJSON())}\n`;
    await mkdir(dirname(target), { recursive: true });
    await writeFileAtomic(target, text);
  }

  #checkText(where: string, text: unknown): string {
    if (typeof text !== 'string') throw invalidArgument(`${where} must be a string, got ${describeValue(text)}`);
    const t = normaliseArmText(text);
    if (t.length === 0) throw invalidArgument(`${where} is empty`);
    return t;
  }

  #rankPool(rank: number): [number, number] {
    while (this.#ranks.length < rank) this.#ranks.push([0, 0]);
    return this.#ranks[rank - 1];
  }

  /** The shared prior of an arm at `rank` (leave-one-out), and its posterior. */
  #posterior(arm: Arm | undefined, rank: number): { priorAlpha: number; priorBeta: number; alpha: number; beta: number } {
    const { priorWeight: w, a0, b0 } = this.#settings;
    const s = arm?.s ?? 0, f = arm?.f ?? 0;
    const [S, F] = this.#total;
    const m0 = (a0 + S - s) / (a0 + b0 + S + F - s - f);
    const pool = this.#ranks[rank - 1] ?? [0, 0];
    const sr = pool[0] - (arm?.rs ?? 0), fr = pool[1] - (arm?.rf ?? 0);
    const m = (sr + w * m0) / (sr + fr + w);
    const priorAlpha = w * m, priorBeta = w * (1 - m);
    return { priorAlpha, priorBeta, alpha: priorAlpha + s, beta: priorBeta + f };
  }

  #describe(query: string, rewrite: string, arm: Arm | undefined, rank: number): ArmPosterior {
    const p = this.#posterior(arm, rank);
    return { query, rewrite, rank, successes: arm?.s ?? 0, failures: arm?.f ?? 0, ...p, mean: p.alpha / (p.alpha + p.beta) };
  }

  #touch(key: string, arm: Arm): void {
    this.#arms.delete(key);
    this.#arms.set(key, arm);
  }

  #evict(): void {
    while (this.#arms.size > this.#settings.maxArms) {
      const oldest = this.#arms.keys().next();
      if (oldest.done) break;
      this.#arms.delete(oldest.value);
      this.#evicted++;
    }
  }

  /** mulberry32 on the saved 32-bit state. */
  #uniform(): number {
    this.#rng = (this.#rng + 0x6d2b79f5) >>> 0;
    let t = this.#rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
