// Label maps: source labels (ESCI letters, graded ratings, categories) -> E/S/C/I and a gain in [0, 1].
import { MinielmError, describeValue } from '../errors.ts';
import type { EsciLabel } from './types.ts';

/**
 * Gains of the ESCI paper's NDCG evaluation (Reddy et al., 2022): E 1.0, S 0.1, C 0.01, I 0.
 * Kept as the default so scores compare with published ESCI numbers.
 */
export const ESCI_GAIN: Readonly<Record<EsciLabel, number>> = { E: 1, S: 0.1, C: 0.01, I: 0 };

const ESCI_NAMES: Record<string, EsciLabel> = {
  e: 'E', exact: 'E',
  s: 'S', substitute: 'S',
  c: 'C', complement: 'C',
  i: 'I', irrelevant: 'I',
};

/** Parses 'E', 'exact', 'Substitute', … ; undefined when it is not an ESCI label. */
export function parseEsciLabel(value: string): EsciLabel | undefined {
  return ESCI_NAMES[value.trim().toLowerCase()];
}

/**
 * How a source label becomes (label, gain):
 * - `esci`: ESCI letters or names; gains from `gains` (default ESCI_GAIN).
 * - `graded`: a number r in [min, max]; gain = (r - min) / (max - min); the class is the first
 *   threshold the gain reaches among E, S, C (each a gain), else I.
 * - `categorical`: an explicit table from label text to class and gain.
 */
export type LabelMap =
  | { kind: 'esci'; gains?: Partial<Record<EsciLabel, number>> }
  | { kind: 'graded'; min: number; max: number; thresholds: { E: number; S: number; C: number } }
  | { kind: 'categorical'; table: Record<string, { label: EsciLabel; gain: number }> };

/**
 * Home Depot: mean of 3 raters on 1..3, so gain = (r - 1) / 2. Thresholds (documented in docs/data.md):
 * r >= 2.5 (gain >= 0.75) Exact, r >= 2 (0.5) Substitute, r >= 1.5 (0.25) Complement, else Irrelevant.
 */
export const HOMEDEPOT_LABELS: LabelMap = { kind: 'graded', min: 1, max: 3, thresholds: { E: 0.75, S: 0.5, C: 0.25 } };

/** CrowdFlower: median of raters on 1..4; gain = (r - 1) / 3; 4 Exact, 3 Substitute, 2 Complement, 1 Irrelevant. */
export const CROWDFLOWER_LABELS: LabelMap = { kind: 'graded', min: 1, max: 4, thresholds: { E: 1, S: 2 / 3, C: 1 / 3 } };

export const ESCI_LABELS: LabelMap = { kind: 'esci' };

export const LABEL_PRESETS: Readonly<Record<string, LabelMap>> = {
  esci: ESCI_LABELS,
  homedepot: HOMEDEPOT_LABELS,
  crowdflower: CROWDFLOWER_LABELS,
};

/** Checks a label map once, up front, so a bad one fails before any row is read. */
export function validateLabelMap(map: LabelMap, where: string): void {
  const bad = (msg: string) => new MinielmError('MINIELM_INVALID_ARGUMENT', `${where}: ${msg}`);
  const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
  if (!isObject(map)) throw bad(`a label map must be an object {kind: 'esci' | 'graded' | 'categorical', ...}, got ${describeValue(map)} (e.g. LABEL_PRESETS.homedepot).`);
  const isNumber = (x: unknown): x is number => typeof x === 'number';
  if (map.kind === 'graded') {
    if (!(isNumber(map.min) && isNumber(map.max) && Number.isFinite(map.min) && Number.isFinite(map.max) && map.max > map.min)) {
      throw bad(`graded label map needs finite min < max (got min=${describeValue(map.min)}, max=${describeValue(map.max)}).`);
    }
    if (!isObject(map.thresholds)) throw bad(`graded label map needs thresholds {E, S, C} (gains in [0, 1]), got ${describeValue(map.thresholds)}.`);
    const { E, S, C } = map.thresholds;
    if (!(isNumber(E) && isNumber(S) && isNumber(C) && E >= S && S >= C && C >= 0 && E <= 1)) {
      throw bad(`graded thresholds must satisfy 1 >= E >= S >= C >= 0 (got E=${describeValue(E)}, S=${describeValue(S)}, C=${describeValue(C)}).`);
    }
  } else if (map.kind === 'categorical') {
    if (!isObject(map.table)) throw bad(`categorical label map needs a table {label text: {label, gain}}, got ${describeValue(map.table)}.`);
    for (const [key, v] of Object.entries(map.table)) {
      const entry = v as unknown;
      if (!isObject(entry) || !['E', 'S', 'C', 'I'].includes(entry.label as string) || !(isNumber(entry.gain) && entry.gain >= 0 && entry.gain <= 1)) {
        throw bad(`categorical entry ${describeValue(key)} needs label E|S|C|I and gain in [0, 1].`);
      }
    }
  } else if (map.kind === 'esci') {
    if (map.gains !== undefined) {
      if (!isObject(map.gains)) throw bad(`ESCI gains must be an object {E, S, C, I} of gains in [0, 1], got ${describeValue(map.gains)}.`);
      for (const [key, g] of Object.entries(map.gains)) {
        if (!['E', 'S', 'C', 'I'].includes(key)) throw bad(`ESCI gains has the key ${describeValue(key)}; the classes are E, S, C and I.`);
        if (!(isNumber(g) && g >= 0 && g <= 1)) throw bad(`ESCI gain for ${key} must be in [0, 1] (got ${describeValue(g)}).`);
      }
    }
  } else {
    throw bad(`label map kind must be 'esci', 'graded' or 'categorical', got ${describeValue((map as { kind?: unknown }).kind)}.`);
  }
}

/** Maps one source label; a string saying why when it cannot (the row is then counted as malformed). */
export function applyLabelMap(map: LabelMap, raw: string): { label: EsciLabel; gain: number } | string {
  const text = raw.trim();
  if (map.kind === 'esci') {
    const label = parseEsciLabel(text);
    if (!label) return `label "${truncate(text)}" is not one of E, S, C, I (or exact, substitute, complement, irrelevant)`;
    return { label, gain: map.gains?.[label] ?? ESCI_GAIN[label] };
  }
  if (map.kind === 'categorical') {
    const hit = map.table[text] ?? map.table[text.toLowerCase()];
    if (!hit) return `label "${truncate(text)}" is not in the label map (${Object.keys(map.table).join(', ')})`;
    return hit;
  }
  const r = text === '' ? NaN : Number(text);
  if (!Number.isFinite(r)) return `label "${truncate(text)}" is not a number`;
  if (r < map.min || r > map.max) return `label ${r} is outside [${map.min}, ${map.max}]`;
  const gain = (r - map.min) / (map.max - map.min);
  return { label: gainToLabel(gain, map.thresholds), gain };
}

export function gainToLabel(gain: number, t: { E: number; S: number; C: number }): EsciLabel {
  // A small tolerance so ratings such as 2.33/2.67 (thirds written with two decimals) land where intended.
  const eps = 1e-9;
  if (gain + eps >= t.E) return 'E';
  if (gain + eps >= t.S) return 'S';
  if (gain + eps >= t.C) return 'C';
  return 'I';
}

function truncate(s: string, n = 40): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
