// M2 as an LLM: a chat model role-plays a profile and says how many of the shown products it would click,
// put in the cart and buy. One request answers all three counts (the paper asks three times; one JSON answer
// costs a third and keeps the counts consistent with each other).
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MinielmError, invalidArgument } from '../errors.ts';
import { appendLines } from '../util/atomic.ts';
import type { Engagement, ProductLike } from '../rewards/types.ts';
import { OpenAIChatClient, type ChatClient, type ChatClientOptions, type ChatMessage } from './chat-client.ts';
import { checkJudgeRequest, type Judge, type JudgeBatchOptions, type JudgeRequest } from './judge.ts';
import { describeProfile, type UserProfile } from './profiles.ts';

/** Part of every cache key: bump it whenever the prompt or the parsing rules change. */
export const JUDGE_PROMPT_VERSION = 'judge-v1';

const SYSTEM_PROMPT =
  'You act as one particular shopper on an online store. Decide the way this person would, given who they ' +
  'are, what they like and what they can spend. Reply only in the JSON format you are asked for.';

function productLine(p: ProductLike, i: number): string {
  const parts = [`${i + 1}. ${p.title.slice(0, 200)}`];
  if (p.brand) parts.push(`brand: ${p.brand}`);
  if (p.color) parts.push(`colour: ${p.color}`);
  if (typeof p.price === 'number' && Number.isFinite(p.price)) parts.push(`price: ${p.price.toFixed(2)}`);
  return parts.join(' | ');
}

/** The conversation sent for one (profile, query, products); exported so tests and logs can show it. */
export function judgeMessages(profile: UserProfile, query: string, products: readonly ProductLike[]): ChatMessage[] {
  const n = products.length;
  const user = [
    'Who you are:',
    describeProfile(profile),
    '',
    `You searched the store for: "${query}"`,
    `It showed you these ${n} products, top first:`,
    ...products.map(productLine),
    '',
    'Judge each product against what you searched for: the thing you asked for matters most, the extra words',
    'only narrow it down. Products that do not fit the search, your taste or your budget get little attention.',
    `Then give three whole numbers between 0 and ${n}: how many of these products you would open ("clicks"),`,
    'how many of those you would put in your cart ("add_to_cart") and how many of those you would finally buy',
    '("purchases"). Carts cannot exceed clicks and purchases cannot exceed carts.',
    'Reply with exactly one line of JSON and nothing else: {"clicks": N, "add_to_cart": N, "purchases": N}',
  ].join('\n');
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    { role: 'user', content: user },
  ];
}

const NUMBER_WORDS: Record<string, number> = {
  zero: 0, none: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18,
  nineteen: 19, twenty: 20,
};

type Field = 'clicks' | 'addToCart' | 'purchases';
const FIELDS: readonly Field[] = ['clicks', 'addToCart', 'purchases'];

function fieldOfLabel(label: string): Field | undefined {
  const k = label.toLowerCase().replace(/[^a-z]/g, '');
  if (k.includes('cart') || k.includes('basket')) return 'addToCart';
  if (k.includes('click') || k === 'open' || k === 'opened' || k === 'opens') return 'clicks';
  if (k.includes('purchas') || k === 'buy' || k === 'buys' || k === 'bought' || k === 'orders' || k === 'order') return 'purchases';
  return undefined;
}

/** A count written as digits, a number word ("three") or "all" (= the list length); undefined if it is none of these. */
function parseCount(token: string, listLength: number): number | undefined {
  const t = token.trim().toLowerCase();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t in NUMBER_WORDS) return NUMBER_WORDS[t];
  if (t === 'all') return listLength;
  return undefined;
}

export interface ParsedEngagement {
  engagement: Engagement;
  /** A count fell outside [0, list length] and was clipped into it. */
  rangeClipped: boolean;
  /** carts > clicks or purchases > carts, and the larger count was clipped down. */
  funnelClipped: boolean;
}

function fromJson(reply: string, listLength: number): Partial<Record<Field, number>> | undefined {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(reply)?.[1];
  const candidates = fenced ? [fenced, reply] : [reply];
  for (const text of candidates) {
    const start = text.indexOf('{');
    const end = text.lastIndexOf('}');
    if (start < 0 || end <= start) continue;
    let json: unknown;
    try {
      json = JSON.parse(text.slice(start, end + 1));
    } catch {
      continue;
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) continue;
    const out: Partial<Record<Field, number>> = {};
    for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
      const field = fieldOfLabel(key);
      if (!field || out[field] !== undefined) continue;
      const n = typeof value === 'number' ? value : typeof value === 'string' ? parseCount(value, listLength) : undefined;
      if (n !== undefined && Number.isFinite(n)) out[field] = n;
    }
    return out;
  }
  return undefined;
}

/**
 * Free text like "Clicks: 3, cart two, buy 1" or "I'd click three and add two to my cart": every count goes to
 * its nearest label within a few words (a tie goes to the label before it, the "label: value" layout), and a
 * field takes the first count it received.
 */
function fromLabels(reply: string, listLength: number): Partial<Record<Field, number>> {
  const tokens = reply.toLowerCase().match(/-?\d+(?:\.\d+)?|[a-z]+/g) ?? [];
  const window = 5;
  const labels: (Field | undefined)[] = tokens.map((tok, i) => {
    const field = fieldOfLabel(tok);
    if (field) return field;
    // "add two to my cart": the verb carries the label, closer to the count than the noun.
    if (tok === 'add' || tok === 'added' || tok === 'adding' || tok === 'put') {
      for (let d = 1; d <= window && i + d < tokens.length; d++) if (fieldOfLabel(tokens[i + d]) === 'addToCart') return 'addToCart';
    }
    return undefined;
  });
  const out: Partial<Record<Field, number>> = {};
  tokens.forEach((tok, i) => {
    const count = parseCount(tok, listLength);
    if (count === undefined) return;
    for (let d = 1; d <= window; d++) {
      const field = labels[i - d] ?? labels[i + d];
      if (field) {
        if (out[field] === undefined) out[field] = count;
        return;
      }
    }
  });
  return out;
}

/**
 * Reads the three counts from a model's reply: JSON first (also inside a ```json fence, keys matched loosely,
 * string values like "three" accepted), then labelled numbers in free text. Every field must be found — a missing
 * one throws, it is never filled with a guess. Counts are then clipped into [0, listLength] and made monotone
 * (carts ≤ clicks, purchases ≤ carts) by lowering the later stage; the flags say when that happened.
 */
export function parseEngagementReply(reply: string, listLength: number): ParsedEngagement {
  if (!Number.isInteger(listLength) || listLength < 0) throw invalidArgument(`list length must be a non-negative integer, got ${listLength}.`);
  const json = fromJson(reply, listLength);
  let found: Partial<Record<Field, number>> = json ?? {};
  if (FIELDS.some((f) => found[f] === undefined)) found = { ...fromLabels(reply, listLength), ...found };
  const missing = FIELDS.filter((f) => found[f] === undefined);
  if (missing.length > 0) {
    throw new MinielmError('MINIELM_JUDGE', `could not read ${missing.join(', ')} from the judge's reply ${JSON.stringify(reply.slice(0, 160))}.`);
  }
  let rangeClipped = false;
  const clip = (v: number): number => {
    const c = Math.min(listLength, Math.max(0, v));
    if (c !== v) rangeClipped = true;
    return c;
  };
  const clicks = clip(found.clicks!);
  let addToCart = clip(found.addToCart!);
  let purchases = clip(found.purchases!);
  let funnelClipped = false;
  if (addToCart > clicks) {
    addToCart = clicks;
    funnelClipped = true;
  }
  if (purchases > addToCart) {
    purchases = addToCart;
    funnelClipped = true;
  }
  return { engagement: { clicks, addToCart, purchases, listLength }, rangeClipped, funnelClipped };
}

interface CacheEntry {
  key: string;
  clicks: number;
  addToCart: number;
  purchases: number;
  listLength: number;
  reply: string;
}

/**
 * A persistent answer cache: one JSON object per line, appended (O_APPEND, one write per entry), so concurrent
 * writers never corrupt earlier lines; a torn last line from a crash is skipped on load.
 */
export class JsonlJudgeCache {
  private entries: Map<string, CacheEntry> | undefined;
  private loading: Promise<void> | undefined;
  private writes: Promise<void> = Promise.resolve();
  skippedLines = 0;

  constructor(readonly file: string) {}

  private async load(): Promise<void> {
    if (this.entries) return;
    this.loading ??= (async () => {
      const map = new Map<string, CacheEntry>();
      let text = '';
      try {
        text = await readFile(this.file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new MinielmError('MINIELM_BAD_FILE', `cannot read judge cache "${this.file}": ${(err as Error).message}.`, { cause: err });
        }
      }
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          const e = JSON.parse(line) as CacheEntry;
          if (typeof e.key === 'string' && [e.clicks, e.addToCart, e.purchases, e.listLength].every(Number.isFinite)) map.set(e.key, e);
          else this.skippedLines++;
        } catch {
          this.skippedLines++;
        }
      }
      this.entries = map;
    })();
    await this.loading;
  }

  async get(key: string): Promise<Engagement | undefined> {
    await this.load();
    const e = this.entries!.get(key);
    return e && { clicks: e.clicks, addToCart: e.addToCart, purchases: e.purchases, listLength: e.listLength };
  }

  async set(key: string, engagement: Engagement, reply: string): Promise<void> {
    await this.load();
    const entry: CacheEntry = { key, ...engagement, reply };
    this.entries!.set(key, entry);
    const line = `${JSON.stringify(entry)}\n`;
    this.writes = this.writes.then(async () => {
      await mkdir(dirname(this.file), { recursive: true });
      // A line a kill cut short is skipped on load and cut before the next append (never fused with it).
      await appendLines(this.file, line);
    });
    await this.writes;
  }
}

export interface LlmJudgeOptions extends Partial<ChatClientOptions> {
  /** Use this client instead of building one from baseURL/model. */
  client?: ChatClient;
  /** Default 0: the judge should be as repeatable as the endpoint allows. */
  temperature?: number;
  maxTokens?: number;
  /** Sent to servers that honour a sampling seed (vLLM, llama.cpp, OpenAI). */
  seed?: number;
  /** JSONL cache file; omit for an in-memory cache only. */
  cacheFile?: string;
  /** Times a reply may be unreadable before the request fails (each re-asks the model). Default 3. */
  parseAttempts?: number;
}

export interface LlmJudgeStats {
  requests: number;
  cacheHits: number;
  unreadableReplies: number;
  rangeClipped: number;
  funnelClipped: number;
}

export class LlmJudge implements Judge {
  readonly name = 'llm';
  readonly client: ChatClient;
  private readonly temperature: number;
  private readonly maxTokens: number;
  private readonly seed: number | undefined;
  private readonly parseAttempts: number;
  private readonly diskCache: JsonlJudgeCache | undefined;
  private readonly memory = new Map<string, Promise<Engagement>>();
  readonly stats: LlmJudgeStats = { requests: 0, cacheHits: 0, unreadableReplies: 0, rangeClipped: 0, funnelClipped: 0 };

  constructor(options: LlmJudgeOptions) {
    if (options.client) this.client = options.client;
    else {
      if (!options.baseURL) throw invalidArgument('the LLM judge needs --base-url (an OpenAI-compatible endpoint such as http://127.0.0.1:8000/v1).');
      this.client = new OpenAIChatClient({ ...options, baseURL: options.baseURL, model: options.model ?? '' });
    }
    this.temperature = options.temperature ?? 0;
    this.maxTokens = options.maxTokens ?? 64;
    this.seed = options.seed;
    this.parseAttempts = options.parseAttempts ?? 3;
    if (!Number.isInteger(this.parseAttempts) || this.parseAttempts < 1) throw invalidArgument(`parseAttempts must be an integer >= 1, got ${this.parseAttempts}.`);
    this.diskCache = options.cacheFile ? new JsonlJudgeCache(options.cacheFile) : undefined;
  }

  /** Hash of everything that decides the answer: endpoint, model, prompt version, sampling settings and the full conversation. */
  cacheKey(messages: ChatMessage[]): string {
    const material = JSON.stringify([
      JUDGE_PROMPT_VERSION,
      this.client.baseURL,
      this.client.model,
      this.temperature,
      this.maxTokens,
      this.seed ?? null,
      messages,
    ]);
    return createHash('sha256').update(material).digest('hex');
  }

  async judgeBatch(requests: JudgeRequest[], options: JudgeBatchOptions = {}): Promise<Engagement[]> {
    requests.forEach(checkJudgeRequest);
    return Promise.all(requests.map((r) => this.judgeOne(r, options.signal)));
  }

  private judgeOne(request: JudgeRequest, signal: AbortSignal | undefined): Promise<Engagement> {
    const messages = judgeMessages(request.profile, request.query, request.products);
    const key = this.cacheKey(messages);
    const known = this.memory.get(key);
    if (known) {
      this.stats.cacheHits++;
      return known;
    }
    const pending = this.resolve(key, messages, request.products.length, signal);
    this.memory.set(key, pending);
    // A failure must not poison the in-memory cache: the next call asks again.
    pending.catch(() => this.memory.delete(key));
    return pending;
  }

  private async resolve(key: string, messages: ChatMessage[], listLength: number, signal: AbortSignal | undefined): Promise<Engagement> {
    const stored = await this.diskCache?.get(key);
    if (stored) {
      this.stats.cacheHits++;
      return stored;
    }
    if (listLength === 0) return { clicks: 0, addToCart: 0, purchases: 0, listLength: 0 };
    let problem = '';
    for (let attempt = 0; attempt < this.parseAttempts; attempt++) {
      this.stats.requests++;
      const reply = await this.client.complete(messages, { temperature: this.temperature, maxTokens: this.maxTokens, seed: this.seed, signal });
      let parsed: ParsedEngagement;
      try {
        parsed = parseEngagementReply(reply, listLength);
      } catch (err) {
        this.stats.unreadableReplies++;
        problem = (err as Error).message;
        continue;
      }
      if (parsed.rangeClipped) this.stats.rangeClipped++;
      if (parsed.funnelClipped) this.stats.funnelClipped++;
      await this.diskCache?.set(key, parsed.engagement, reply);
      return parsed.engagement;
    }
    throw new MinielmError(
      'MINIELM_JUDGE',
      `model "${this.client.model}" gave ${this.parseAttempts} unreadable answer(s); last: ${problem} ` +
        'Use a model that follows JSON instructions, or raise parseAttempts.',
    );
  }
}
