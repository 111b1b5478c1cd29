// Simulated-user profiles (paper appendix B): demographics and shopping preferences, sampled with a seed or
// written by an LLM, validated field by field, stored as JSON.
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { MinielmError, invalidArgument } from '../errors.ts';
import { writeFileAtomicSync } from '../util/atomic.ts';
import { seededRandom } from './random.ts';
import type { ChatClient } from './chat-client.ts';

export const GENDERS = ['female', 'male', 'non-binary'] as const;
export const AGE_BANDS = ['18-25', '26-35', '36-50', '51-65', '65+'] as const;
export const REGIONS = ['North America', 'Latin America', 'Europe', 'Africa', 'Middle East', 'South Asia', 'East Asia', 'Oceania'] as const;
export const INCOMES = ['low', 'middle', 'high', 'luxury'] as const;

export type Gender = (typeof GENDERS)[number];
export type AgeBand = (typeof AGE_BANDS)[number];
export type Income = (typeof INCOMES)[number];

export interface UserProfile {
  id: string;
  gender: Gender;
  ageBand: AgeBand;
  /** Free text; REGIONS lists what the seeded sampler draws from. */
  region: string;
  income: Income;
  /** 0 = price barely matters … 1 = strongly prefers the cheaper products of a list. */
  priceSensitivity: number;
  /** 0 = indifferent to brands … 1 = strongly drawn to the brands in likedBrands. */
  brandAffinity: number;
  likedBrands: string[];
  /** Style words (casual, classic, minimalist…) matched against product titles. */
  styles: string[];
  colors: string[];
  materials: string[];
}

export interface ProfileVocabulary {
  brands: readonly string[];
  styles: readonly string[];
  colors: readonly string[];
  materials: readonly string[];
}

/** Defaults for the seeded sampler; pass the catalog's own brands/colours so preferences can actually match. */
export const DEFAULT_VOCABULARY: Readonly<ProfileVocabulary> = Object.freeze({
  brands: ['Acme', 'Northwind', 'Contoso', 'Fabrikam', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Tyrell', 'Hooli', 'Vandelay'],
  styles: ['casual', 'business', 'luxury', 'trendy', 'minimalist', 'classic', 'sporty', 'vintage', 'bohemian', 'modern', 'rustic', 'outdoor'],
  colors: ['black', 'white', 'grey', 'navy', 'blue', 'red', 'green', 'beige', 'brown', 'pink', 'purple', 'yellow', 'orange', 'silver', 'gold'],
  materials: ['cotton', 'organic cotton', 'linen', 'wool', 'leather', 'vegan leather', 'silk', 'polyester', 'bamboo', 'stainless steel', 'wood', 'recycled plastic', 'ceramic', 'glass'],
});

export interface GenerateProfilesOptions {
  vocabulary?: Partial<ProfileVocabulary>;
  /** Prefix of the generated ids ("u" gives u0000, u0001, …). */
  idPrefix?: string;
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)];
}

function pickSome<T>(rand: () => number, items: readonly T[], min: number, max: number): T[] {
  const n = Math.min(items.length, min + Math.floor(rand() * (max - min + 1)));
  const pool = [...items];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(pool.splice(Math.floor(rand() * pool.length), 1)[0]);
  return out;
}

const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));
const round2 = (x: number): number => Math.round(x * 100) / 100;

/** A seeded pool: the same (count, seed, vocabulary) always gives the same profiles. */
export function generateProfiles(count: number, seed: number, options: GenerateProfilesOptions = {}): UserProfile[] {
  if (!Number.isInteger(count) || count < 0) throw invalidArgument(`profile count must be a non-negative integer, got ${count}.`);
  if (!Number.isFinite(seed)) throw invalidArgument(`profile seed must be a finite number, got ${seed}.`);
  const vocab = { ...DEFAULT_VOCABULARY, ...options.vocabulary };
  for (const k of ['brands', 'styles', 'colors', 'materials'] as const) {
    if (!Array.isArray(vocab[k]) || vocab[k].length === 0) throw invalidArgument(`profile vocabulary "${k}" must be a non-empty array of strings.`);
  }
  const rand = seededRandom(seed);
  const prefix = options.idPrefix ?? 'u';
  const width = Math.max(4, String(Math.max(0, count - 1)).length);
  const profiles: UserProfile[] = [];
  for (let i = 0; i < count; i++) {
    const income = pick(rand, INCOMES);
    // Lower income leans price-sensitive, luxury leans brand-loyal; the jitter keeps every combination possible.
    const incomeRank = INCOMES.indexOf(income) / (INCOMES.length - 1);
    profiles.push({
      id: `${prefix}${String(i).padStart(width, '0')}`,
      gender: pick(rand, GENDERS),
      ageBand: pick(rand, AGE_BANDS),
      region: pick(rand, REGIONS),
      income,
      priceSensitivity: round2(clamp01(0.8 - 0.6 * incomeRank + (rand() - 0.5) * 0.5)),
      brandAffinity: round2(clamp01(0.25 + 0.4 * incomeRank + (rand() - 0.5) * 0.6)),
      likedBrands: pickSome(rand, vocab.brands, 1, 3),
      styles: pickSome(rand, vocab.styles, 1, 3),
      colors: pickSome(rand, vocab.colors, 1, 3),
      materials: pickSome(rand, vocab.materials, 0, 2),
    });
  }
  return profiles;
}

function fail(where: string, message: string): never {
  throw invalidArgument(`${where}: ${message}`);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], where: string): T {
  if (typeof value !== 'string') fail(where, `must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}.`);
  const v = value.trim().toLowerCase();
  const hit = allowed.find((a) => a.toLowerCase() === v);
  if (!hit) fail(where, `must be one of ${allowed.join(', ')}; got "${value}".`);
  return hit;
}

function unitNumber(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    fail(where, `must be a number in [0, 1]; got ${JSON.stringify(value)}.`);
  }
  return value;
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value)) fail(where, `must be an array of strings; got ${JSON.stringify(value)}.`);
  return value.map((v, i) => {
    if (typeof v !== 'string' || v.trim() === '') fail(`${where}[${i}]`, `must be a non-empty string; got ${JSON.stringify(v)}.`);
    return v.trim();
  });
}

/** Checks an untrusted value (a JSON file, an LLM answer) and returns a clean profile; errors name the field. */
export function validateProfile(value: unknown, where = 'profile'): UserProfile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'must be a JSON object.');
  const o = value as Record<string, unknown>;
  if (typeof o.id !== 'string' || o.id.trim() === '') fail(`${where}.id`, `must be a non-empty string; got ${JSON.stringify(o.id)}.`);
  if (typeof o.region !== 'string' || o.region.trim() === '') fail(`${where}.region`, `must be a non-empty string; got ${JSON.stringify(o.region)}.`);
  return {
    id: o.id.trim(),
    gender: oneOf(o.gender, GENDERS, `${where}.gender`),
    ageBand: oneOf(o.ageBand, AGE_BANDS, `${where}.ageBand`),
    region: o.region.trim(),
    income: oneOf(o.income, INCOMES, `${where}.income`),
    priceSensitivity: unitNumber(o.priceSensitivity, `${where}.priceSensitivity`),
    brandAffinity: unitNumber(o.brandAffinity, `${where}.brandAffinity`),
    likedBrands: stringList(o.likedBrands, `${where}.likedBrands`),
    styles: stringList(o.styles, `${where}.styles`),
    colors: stringList(o.colors, `${where}.colors`),
    materials: stringList(o.materials, `${where}.materials`),
  };
}

function validatePool(list: unknown, where: string): UserProfile[] {
  if (!Array.isArray(list)) fail(where, 'must be an array of profiles (or an object with a "profiles" array).');
  const seen = new Set<string>();
  return list.map((p, i) => {
    const profile = validateProfile(p, `${where}[${i}]`);
    if (seen.has(profile.id)) fail(`${where}[${i}].id`, `"${profile.id}" is used twice; profile ids must be unique.`);
    seen.add(profile.id);
    return profile;
  });
}

/** Writes `{ "version": 1, "profiles": [...] }` atomically (temporary file, fsync, rename): readers never see half a file. */
export function saveProfiles(file: string, profiles: readonly UserProfile[]): void {
  const clean = validatePool(profiles, 'profiles');
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomicSync(file, `${JSON.stringify({ version: 1, profiles: clean }, null, 2)}\n`);
}

/** Reads a pool written by saveProfiles (or a bare JSON array of profiles), validating every profile. */
export function loadProfiles(file: string): UserProfile[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MinielmError('MINIELM_NOT_FOUND', `cannot read profiles file "${file}": ${(err as Error).message}. Create one with generateProfiles + saveProfiles.`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `profiles file "${file}" is not valid JSON: ${(err as Error).message}.`, { cause: err });
  }
  const list = Array.isArray(json) ? json : (json as { profiles?: unknown } | null)?.profiles;
  try {
    return validatePool(list, file);
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', (err as Error).message, { cause: err });
  }
}

/** A short plain-language bio of a profile, as an LLM judge reads it. */
export function describeProfile(p: UserProfile): string {
  const level = (x: number): string => (x < 0.34 ? 'low' : x < 0.67 ? 'medium' : 'high');
  const lines = [
    `Gender: ${p.gender}; age: ${p.ageBand}; lives in: ${p.region}; income: ${p.income}.`,
    `Price sensitivity: ${level(p.priceSensitivity)} (${p.priceSensitivity}). Brand loyalty: ${level(p.brandAffinity)} (${p.brandAffinity}).`,
    `Favourite brands: ${p.likedBrands.join(', ') || 'none in particular'}.`,
    `Style: ${p.styles.join(', ') || 'no strong taste'}. Colours: ${p.colors.join(', ') || 'any'}. Materials: ${p.materials.join(', ') || 'no preference'}.`,
  ];
  return lines.join('\n');
}

// Bump when the generation prompt changes.
export const PROFILE_PROMPT_VERSION = 'profiles-v1';

function profilePrompt(count: number, startIndex: number): string {
  return [
    `Invent ${count} different online shoppers for a simulation of an e-commerce store. Make them varied: mix`,
    'genders, ages, parts of the world and spending power, and let their habits follow from who they are',
    '(a tight budget usually means more attention to price; wealthier shoppers may care more about labels).',
    'Answer with JSON only: an array of objects with exactly these keys:',
    `"id" (use "llm${startIndex}", "llm${startIndex + 1}", …), "gender" (${GENDERS.join(' | ')}),`,
    `"ageBand" (${AGE_BANDS.join(' | ')}), "region" (a world region), "income" (${INCOMES.join(' | ')}),`,
    '"priceSensitivity" and "brandAffinity" (numbers between 0 and 1), "likedBrands", "styles", "colors",',
    '"materials" (arrays of short strings; styles such as casual, classic, minimalist, sporty, luxury, trendy).',
  ].join('\n');
}

export interface LlmProfilesOptions {
  /** Profiles asked per request. Default 10. */
  perRequest?: number;
  temperature?: number;
  /** Requests per batch that may fail to validate before giving up. Default 2 attempts per batch. */
  attempts?: number;
}

/**
 * Asks a chat model to write `count` profiles and validates every one. A reply that is not a JSON array of
 * valid profiles is retried; if it stays junk, this throws MINIELM_JUDGE quoting the problem — it never pads
 * the pool with seeded profiles behind the caller's back (use generateProfiles explicitly for that).
 */
export async function generateProfilesWithLlm(chat: ChatClient, count: number, options: LlmProfilesOptions = {}): Promise<UserProfile[]> {
  if (!Number.isInteger(count) || count < 1) throw invalidArgument(`LLM profile count must be a positive integer, got ${count}.`);
  const perRequest = options.perRequest ?? 10;
  const attempts = options.attempts ?? 2;
  const out: UserProfile[] = [];
  const seen = new Set<string>();
  while (out.length < count) {
    const want = Math.min(perRequest, count - out.length);
    let lastProblem = '';
    let got: UserProfile[] | undefined;
    for (let attempt = 0; attempt < attempts && !got; attempt++) {
      const reply = await chat.complete([{ role: 'user', content: profilePrompt(want, out.length) }], {
        temperature: options.temperature ?? 0.9,
        maxTokens: 400 * want,
      });
      try {
        got = parseProfileReply(reply, want, out.length);
      } catch (err) {
        lastProblem = (err as Error).message;
      }
    }
    if (!got) {
      throw new MinielmError(
        'MINIELM_JUDGE',
        `the model did not return valid profiles after ${attempts} attempt(s): ${lastProblem}. ` +
          'Try another model or a lower temperature, or use the seeded pool (generateProfiles / --profile-seed).',
      );
    }
    for (const p of got) {
      // Models repeat ids; renumber so the pool stays unique.
      const profile = seen.has(p.id) ? { ...p, id: `llm${out.length}` } : p;
      seen.add(profile.id);
      out.push(profile);
    }
  }
  return out.slice(0, count);
}

function parseProfileReply(reply: string, want: number, startIndex: number): UserProfile[] {
  const start = reply.indexOf('[');
  const end = reply.lastIndexOf(']');
  if (start < 0 || end <= start) throw new Error(`reply has no JSON array (began: ${JSON.stringify(reply.slice(0, 80))})`);
  let json: unknown;
  try {
    json = JSON.parse(reply.slice(start, end + 1));
  } catch (err) {
    throw new Error(`reply's array is not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(json) || json.length === 0) throw new Error('reply array is empty');
  const list = json.slice(0, want).map((p, i) => {
    const o = typeof p === 'object' && p !== null ? (p as Record<string, unknown>) : p;
    if (typeof o === 'object' && o !== null && typeof (o as Record<string, unknown>).id !== 'string') {
      (o as Record<string, unknown>).id = `llm${startIndex + i}`;
    }
    return validateProfile(o, `LLM profile ${startIndex + i}`);
  });
  return list;
}
