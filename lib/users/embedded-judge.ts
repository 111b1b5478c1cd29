// The default M2: a behavioural shopper model, no network, thousands of judgements per second.
//
// Position-based model: the user examines rank i (0-based) with probability (i + 1)^-η; an examined product is
// clicked with probability σ(attraction), where attraction adds M1 relevance, the profile's liked brands,
// colours, style words and materials found in the product, a price tilt (price relative to the list's median,
// signed by income and price sensitivity) and a small seeded per-(user, product) taste term. A click becomes a
// cart with σ(cart score) and a cart a purchase with σ(purchase score); relevance and price weigh more further
// down the funnel. The judge returns EXPECTED counts (sums of probabilities), so a reward built on them has no
// sampling variance; the seed only moves the taste term.
import { invalidArgument } from '../errors.ts';
import { LexicalOverlapScorer, lexicalTokens, type RelevanceScorer } from '../rewards/relevance.ts';
import type { Engagement, ProductLike } from '../rewards/types.ts';
import { checkJudgeRequest, type Judge, type JudgeRequest } from './judge.ts';
import type { Income, UserProfile } from './profiles.ts';
import { fnv1a, hashToUnit } from './random.ts';

export interface EmbeddedUserParameters {
  /** η in examination(i) = (i + 1)^-η; 0 = the user reads everything, larger = only the top matters. */
  examinationDecay: number;
  clickBias: number;
  clickRelevance: number;
  cartBias: number;
  cartRelevance: number;
  purchaseBias: number;
  purchaseRelevance: number;
  /** Added per matching preference, to all three stages (brand is scaled by the profile's brandAffinity). */
  brandMatch: number;
  colorMatch: number;
  /** Per matching style word, at most two counted. */
  styleMatch: number;
  materialMatch: number;
  /** Price tilt weights per stage, multiplied by (income lean − priceSensitivity) · ln(price / list median). */
  clickPrice: number;
  cartPrice: number;
  purchasePrice: number;
  /** Standard deviation of the seeded per-(user, product) taste term, on the click logit. */
  tasteNoise: number;
}

/** Defaults chosen so a fully relevant 10-product list gets ≈ 2.6 clicks, 1.6 carts, 1 purchase, an irrelevant one ≈ 0.15 clicks. */
export const DEFAULT_USER_PARAMETERS: Readonly<EmbeddedUserParameters> = Object.freeze({
  examinationDecay: 1.0,
  clickBias: -3.0,
  clickRelevance: 5.0,
  cartBias: -1.5,
  cartRelevance: 2.0,
  purchaseBias: -1.0,
  purchaseRelevance: 1.5,
  brandMatch: 1.5,
  colorMatch: 0.6,
  styleMatch: 0.5,
  materialMatch: 0.4,
  clickPrice: 0.5,
  cartPrice: 1.0,
  purchasePrice: 1.5,
  tasteNoise: 0.3,
});

/** How far income pushes towards dearer products before price sensitivity pulls back. */
const INCOME_LEAN: Readonly<Record<Income, number>> = Object.freeze({ low: 0, middle: 0.15, high: 0.3, luxury: 0.6 });

export interface EmbeddedJudgeOptions {
  seed?: number;
  parameters?: Partial<EmbeddedUserParameters>;
  /** Scores products whose request has no `relevance`; default LexicalOverlapScorer (a proxy, not M1). */
  relevanceScorer?: RelevanceScorer;
}

export interface PositionDetail {
  productId: string;
  examination: number;
  relevance: number;
  attraction: number;
  click: number;
  cartGivenClick: number;
  purchaseGivenCart: number;
}

interface PreparedProfile {
  brands: Set<string>;
  colors: string[];
  styles: string[];
  materials: string[];
  lean: number;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const phrase = (words: string): string => ` ${lexicalTokens(words).join(' ')} `;

export class EmbeddedJudge implements Judge {
  readonly name = 'embedded';
  readonly seed: number;
  readonly parameters: Readonly<EmbeddedUserParameters>;
  private readonly relevanceScorer: RelevanceScorer;
  private readonly examination: number[] = [];
  private readonly seedHash: number;
  private readonly profiles = new WeakMap<UserProfile, PreparedProfile>();
  private readonly haystacks = new WeakMap<ProductLike, string>();

  constructor(options: EmbeddedJudgeOptions = {}) {
    this.seed = options.seed ?? 0;
    if (!Number.isFinite(this.seed)) throw invalidArgument(`embedded judge seed must be a finite number, got ${this.seed}.`);
    const p = { ...DEFAULT_USER_PARAMETERS, ...options.parameters };
    for (const [k, v] of Object.entries(p)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(`embedded user parameter "${k}" must be a finite number, got ${String(v)}.`);
    }
    if (p.examinationDecay < 0) throw invalidArgument(`embedded user parameter "examinationDecay" must be >= 0, got ${p.examinationDecay}.`);
    if (p.tasteNoise < 0) throw invalidArgument(`embedded user parameter "tasteNoise" must be >= 0, got ${p.tasteNoise}.`);
    this.parameters = Object.freeze(p);
    this.relevanceScorer = options.relevanceScorer ?? new LexicalOverlapScorer();
    this.seedHash = fnv1a(String(this.seed));
  }

  async judgeBatch(requests: JudgeRequest[]): Promise<Engagement[]> {
    requests.forEach(checkJudgeRequest);
    const relevance = await this.relevanceFor(requests);
    return requests.map((r, i) => this.judgeOne(r, relevance[i]));
  }

  /** Per-position probabilities for one request, for inspection (the CLI prints them). */
  async explain(request: JudgeRequest): Promise<{ engagement: Engagement; positions: PositionDetail[] }> {
    checkJudgeRequest(request, 0);
    const [relevance] = await this.relevanceFor([request]);
    const positions: PositionDetail[] = [];
    const engagement = this.judgeOne(request, relevance, positions);
    return { engagement, positions };
  }

  private async relevanceFor(requests: JudgeRequest[]): Promise<number[][]> {
    const pairs: { query: string; product: ProductLike }[] = [];
    for (const r of requests) if (!r.relevance) for (const product of r.products) pairs.push({ query: r.query, product });
    const scored = pairs.length ? await this.relevanceScorer.scoreBatch(pairs) : [];
    let k = 0;
    return requests.map((r) => r.relevance ?? r.products.map(() => scored[k++]));
  }

  private examinationAt(i: number): number {
    while (this.examination.length <= i) this.examination.push((this.examination.length + 1) ** -this.parameters.examinationDecay);
    return this.examination[i];
  }

  private prepare(profile: UserProfile): PreparedProfile {
    let prepared = this.profiles.get(profile);
    if (!prepared) {
      prepared = {
        brands: new Set(profile.likedBrands.map((b) => b.trim().toLowerCase())),
        colors: profile.colors.map(phrase).filter((s) => s.trim()),
        styles: profile.styles.map(phrase).filter((s) => s.trim()),
        materials: profile.materials.map(phrase).filter((s) => s.trim()),
        lean: (INCOME_LEAN[profile.income] ?? 0) - profile.priceSensitivity,
      };
      this.profiles.set(profile, prepared);
    }
    return prepared;
  }

  /** The product's words, padded with spaces so " word " matches whole words and phrases only. */
  private haystack(product: ProductLike): string {
    let h = this.haystacks.get(product);
    if (h === undefined) {
      const text = typeof product.text === 'string' ? product.text.slice(0, 300) : '';
      h = phrase(`${product.title} ${product.color ?? ''} ${text}`);
      this.haystacks.set(product, h);
    }
    return h;
  }

  private judgeOne(request: JudgeRequest, relevance: number[], details?: PositionDetail[]): Engagement {
    const P = this.parameters;
    const user = this.prepare(request.profile);
    const products = request.products;
    const n = products.length;
    const median = medianPrice(products);
    const userHash = fnv1a(request.profile.id, this.seedHash);
    const noiseScale = P.tasteNoise * 2 * Math.sqrt(3); // uniform on [-½, ½] scaled to this standard deviation
    let clicks = 0;
    let carts = 0;
    let purchases = 0;
    for (let i = 0; i < n; i++) {
      const product = products[i];
      const rel = Math.min(1, Math.max(0, relevance[i]));
      const hay = this.haystack(product);
      let pref = 0;
      if (product.brand && user.brands.has(product.brand.trim().toLowerCase())) pref += P.brandMatch * request.profile.brandAffinity;
      for (const c of user.colors) if (hay.includes(c)) { pref += P.colorMatch; break; }
      let styleHits = 0;
      for (const s of user.styles) if (styleHits < 2 && hay.includes(s)) styleHits++;
      pref += P.styleMatch * styleHits;
      for (const m of user.materials) if (hay.includes(m)) { pref += P.materialMatch; break; }
      const price = product.price;
      const priceTerm = median > 0 && typeof price === 'number' && price > 0 ? user.lean * Math.log(price / median) : 0;
      const taste = (hashToUnit(fnv1a(product.id, userHash)) - 0.5) * noiseScale;
      const attraction = P.clickBias + P.clickRelevance * rel + pref + P.clickPrice * priceTerm + taste;
      const click = this.examinationAt(i) * sigmoid(attraction);
      const cart = sigmoid(P.cartBias + P.cartRelevance * rel + pref + P.cartPrice * priceTerm);
      const buy = sigmoid(P.purchaseBias + P.purchaseRelevance * rel + pref + P.purchasePrice * priceTerm);
      clicks += click;
      carts += click * cart;
      purchases += click * cart * buy;
      details?.push({
        productId: product.id,
        examination: this.examinationAt(i),
        relevance: rel,
        attraction,
        click,
        cartGivenClick: cart,
        purchaseGivenCart: buy,
      });
    }
    return { clicks, addToCart: carts, purchases, listLength: n };
  }
}

/** Median of the positive prices in the list; 0 (no price term) when fewer than two products carry one. */
function medianPrice(products: readonly ProductLike[]): number {
  const prices: number[] = [];
  for (const p of products) if (typeof p.price === 'number' && Number.isFinite(p.price) && p.price > 0) prices.push(p.price);
  if (prices.length < 2) return 0;
  prices.sort((a, b) => a - b);
  const mid = prices.length >> 1;
  return prices.length % 2 ? prices[mid] : (prices[mid - 1] + prices[mid]) / 2;
}
