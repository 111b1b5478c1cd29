// `minielm judge`: score one query's product list under a simulated user, for inspection.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MinielmError, invalidArgument } from '../errors.ts';
import { engagementRates } from '../rewards/metrics.ts';
import type { ProductLike } from '../rewards/types.ts';
import { EmbeddedJudge } from '../users/embedded-judge.ts';
import type { Judge, JudgeRequest } from '../users/judge.ts';
import { LlmJudge } from '../users/llm-judge.ts';
import { generateProfiles, loadProfiles, type UserProfile } from '../users/profiles.ts';

export const help = `Usage: minielm judge --query <text> (--products <file.json> | --products-json <json>) [options]

Scores a product list for a query under a simulated user and prints the clicks, add-to-cart and
purchases it predicts (expected counts for the embedded judge, the model's counts for the LLM judge).

Input
  --query <text>            the user's original query (may also come from the products file)
  --products <file.json>    a JSON array of products {id, title, brand?, color?, price?, text?},
                            or an object {query?, products, relevance?}
  --products-json <json>    the same, inline
  --relevance <g1,g2,...>   M1 gains in [0, 1], one per product (default: lexical overlap with the query)

Judge
  --judge embedded|llm      default embedded
  --seed <n>                embedded judge seed (default 0)
  --base-url <url>          LLM judge: OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1
  --model <name>            LLM judge: model name; the key comes from MINIELM_JUDGE_API_KEY or OPENAI_API_KEY
  --temperature <t>         LLM judge sampling temperature (default 0)
  --timeout-ms <ms>         LLM judge per-request timeout (default 60000)
  --retries <n>             LLM judge retries after the first attempt (default 4)
  --cache <file.jsonl>      LLM judge answer cache (default none)

Profile
  --profiles <file.json>    a profile pool saved by saveProfiles (default: a seeded pool)
  --profile-index <n>       which profile of the pool (default 0)
  --profile-id <id>         or pick it by id
  --profile-seed <n>        seed of the generated pool when --profiles is not given (default 0)

Output
  --explain                 per-position probabilities (embedded judge)
  --json                    print one JSON object instead of text
`;

function readProductsInput(text: string, source: string): { query?: string; products: ProductLike[]; relevance?: number[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${source} is not valid JSON: ${(err as Error).message}.`);
  }
  const obj = Array.isArray(json) ? { products: json } : (json as { query?: unknown; products?: unknown; relevance?: unknown } | null);
  if (!obj || !Array.isArray(obj.products)) {
    throw new MinielmError('MINIELM_BAD_FILE', `${source} must be a JSON array of products or an object with a "products" array.`);
  }
  obj.products.forEach((p: unknown, i: number) => {
    const o = p as { id?: unknown; title?: unknown } | null;
    if (!o || typeof o !== 'object' || typeof o.id !== 'string' || typeof o.title !== 'string') {
      throw new MinielmError('MINIELM_BAD_FILE', `${source}: products[${i}] needs string "id" and "title".`);
    }
  });
  if (obj.query !== undefined && typeof obj.query !== 'string') throw new MinielmError('MINIELM_BAD_FILE', `${source}: "query" must be a string.`);
  if (obj.relevance !== undefined && !Array.isArray(obj.relevance)) throw new MinielmError('MINIELM_BAD_FILE', `${source}: "relevance" must be an array of numbers.`);
  return { query: obj.query as string | undefined, products: obj.products as ProductLike[], relevance: obj.relevance as number[] | undefined };
}

function intFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument(`${flag} must be a non-negative integer, got "${value}".`);
  return n;
}

function numberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw invalidArgument(`${flag} must be a number, got "${value}".`);
  return n;
}

function pickProfile(values: Record<string, string | boolean | undefined>): UserProfile {
  const index = intFlag(values['profile-index'] as string | undefined, '--profile-index', 0);
  const id = values['profile-id'] as string | undefined;
  const file = values.profiles as string | undefined;
  const pool = file ? loadProfiles(file) : generateProfiles(Math.max(index + 1, 1), intFlag(values['profile-seed'] as string | undefined, '--profile-seed', 0));
  const source = file ? `profiles file "${file}"` : 'the seeded pool';
  if (id !== undefined) {
    const hit = pool.find((p) => p.id === id);
    if (!hit) throw invalidArgument(`--profile-id "${id}" is not in ${source} (ids: ${pool.slice(0, 5).map((p) => p.id).join(', ')}${pool.length > 5 ? ', …' : ''}).`);
    return hit;
  }
  if (index >= pool.length) throw invalidArgument(`--profile-index ${index} is out of range: ${source} has ${pool.length} profile(s).`);
  return pool[index];
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      query: { type: 'string' },
      products: { type: 'string' },
      'products-json': { type: 'string' },
      relevance: { type: 'string' },
      judge: { type: 'string', default: 'embedded' },
      seed: { type: 'string' },
      'base-url': { type: 'string' },
      model: { type: 'string' },
      temperature: { type: 'string' },
      'timeout-ms': { type: 'string' },
      retries: { type: 'string' },
      cache: { type: 'string' },
      profiles: { type: 'string' },
      'profile-index': { type: 'string' },
      'profile-id': { type: 'string' },
      'profile-seed': { type: 'string' },
      explain: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });

  let input: ReturnType<typeof readProductsInput>;
  if (values.products && values['products-json']) throw invalidArgument('give either --products or --products-json, not both.');
  if (values.products) {
    let text: string;
    try {
      text = readFileSync(values.products, 'utf8');
    } catch (err) {
      throw new MinielmError('MINIELM_NOT_FOUND', `cannot read --products file "${values.products}": ${(err as Error).message}.`);
    }
    input = readProductsInput(text, `--products file "${values.products}"`);
  } else if (values['products-json']) {
    input = readProductsInput(values['products-json'], '--products-json');
  } else {
    throw invalidArgument('no products: pass --products <file.json> or --products-json \'[{"id":"1","title":"..."}]\'.');
  }
  const query = values.query ?? input.query;
  if (!query) throw invalidArgument('no query: pass --query <text> (or a "query" field in the products file).');

  let relevance = input.relevance;
  if (values.relevance !== undefined) {
    relevance = values.relevance.split(',').map((s, i) => {
      const g = Number(s.trim());
      if (s.trim() === '' || !Number.isFinite(g) || g < 0 || g > 1) throw invalidArgument(`--relevance item ${i + 1} ("${s}") must be a number in [0, 1].`);
      return g;
    });
  }
  if (relevance && relevance.length !== input.products.length) {
    throw invalidArgument(`relevance has ${relevance.length} value(s) but there are ${input.products.length} product(s); give one gain per product.`);
  }

  const profile = pickProfile(values);
  const kind = values.judge;
  let judge: Judge;
  if (kind === 'embedded') {
    judge = new EmbeddedJudge({ seed: numberFlag(values.seed, '--seed') ?? 0 });
  } else if (kind === 'llm') {
    if (!values['base-url']) throw invalidArgument('--judge llm needs --base-url (an OpenAI-compatible endpoint such as http://127.0.0.1:8000/v1).');
    if (!values.model) throw invalidArgument('--judge llm needs --model (the model name the endpoint serves).');
    judge = new LlmJudge({
      baseURL: values['base-url'],
      model: values.model,
      temperature: numberFlag(values.temperature, '--temperature'),
      timeoutMs: numberFlag(values['timeout-ms'], '--timeout-ms'),
      retries: values.retries === undefined ? undefined : intFlag(values.retries, '--retries', 4),
      cacheFile: values.cache,
    });
  } else {
    throw invalidArgument(`--judge must be "embedded" or "llm", got "${kind}".`);
  }

  const request: JudgeRequest = { profile, query, products: input.products, relevance };
  const explained = values.explain && judge instanceof EmbeddedJudge ? await judge.explain(request) : undefined;
  const engagement = explained?.engagement ?? (await judge.judgeBatch([request]))[0];
  const rates = engagementRates(engagement);

  if (values.json) {
    console.log(JSON.stringify({ judge: judge.name, query, profile, engagement, rates, positions: explained?.positions }, null, 2));
    return 0;
  }
  const fmt = (x: number): string => x.toFixed(judge.name === 'embedded' ? 3 : 0).padStart(7);
  console.log(`judge    ${judge.name}${judge instanceof EmbeddedJudge ? ` (seed ${judge.seed})` : ` (${(judge as LlmJudge).client.model})`}`);
  console.log(`profile  ${profile.id}: ${profile.gender}, ${profile.ageBand}, ${profile.region}, ${profile.income} income, price sensitivity ${profile.priceSensitivity}, brands ${profile.likedBrands.join('/') || '-'}`);
  console.log(`query    "${query}"  (${input.products.length} products)`);
  console.log(`clicks       ${fmt(engagement.clicks)}   rate ${rates.click.toFixed(3)}`);
  console.log(`add-to-cart  ${fmt(engagement.addToCart)}   rate ${rates.addToCart.toFixed(3)}`);
  console.log(`purchases    ${fmt(engagement.purchases)}   rate ${rates.purchase.toFixed(3)}`);
  if (values.explain && !explained) console.log('(--explain shows per-position probabilities for the embedded judge only)');
  if (explained) {
    console.log('\nrank  id            exam   rel    click  cart|click  buy|cart');
    explained.positions.forEach((p, i) => {
      console.log(
        `${String(i + 1).padStart(4)}  ${p.productId.slice(0, 12).padEnd(12)}  ${p.examination.toFixed(2)}  ${p.relevance.toFixed(2)}  ${p.click.toFixed(3)}  ${p.cartGivenClick.toFixed(3).padStart(10)}  ${p.purchaseGivenCart.toFixed(3).padStart(8)}`,
      );
    });
  }
  return 0;
}
