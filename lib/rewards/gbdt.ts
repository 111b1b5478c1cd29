// Gradient-boosted regression trees (squared loss) over dense numeric features: quantile bins per feature,
// histogram split search, depth-limited trees grown level by level, shrinkage and row subsampling. Small on
// purpose: the lexical relevance model trains ~60 k rows x ~20 features in seconds on one core, and a model is a
// JSON document. Splits are `x <= threshold` go left. A missing value (NaN) has a bin of its own above every
// finite one, so a split can send the missing rows one way and all finite rows the other (threshold MAX_VALUE).
import { invalidArgument } from '../errors.ts';
import { createRng } from '../data/random.ts';

export interface GbdtOptions {
  /** Boosting rounds (trees). Default 300. */
  rounds?: number;
  /** Maximum tree depth. Default 4. */
  depth?: number;
  /** Shrinkage per tree. Default 0.05. */
  learningRate?: number;
  /** Fewest rows in a leaf. Default 40. */
  minLeaf?: number;
  /** L2 regularisation of leaf values. Default 1. */
  lambda?: number;
  /** Share of rows each tree sees. Default 0.8. */
  subsample?: number;
  /** Quantile bins per feature. Default 64 (at most 255). */
  bins?: number;
  seed?: number;
}

/** A tree as flat arrays: node i splits on feature[i] at threshold[i] into left[i] / right[i]; a leaf has feature -1. */
export interface GbdtTree {
  feature: number[];
  threshold: number[];
  left: number[];
  right: number[];
  value: number[];
}

export interface GbdtModel {
  format: 'minielm-gbdt-v1';
  features: string[];
  base: number;
  learningRate: number;
  trees: GbdtTree[];
}

const DEFAULTS = { rounds: 300, depth: 4, learningRate: 0.05, minLeaf: 40, lambda: 1, subsample: 0.8, bins: 64, seed: 1 };

/** Bin edges per feature: distinct quantiles of the column (NaN excluded). */
function binEdges(column: Float64Array, bins: number): number[] {
  const finite = Array.from(column).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const edges: number[] = [];
  for (let b = 1; b < bins; b++) {
    const x = finite[Math.min(finite.length - 1, Math.floor((b * finite.length) / bins))];
    if (x !== undefined && (edges.length === 0 || x > edges[edges.length - 1])) edges.push(x);
  }
  return edges;
}

/** Bin of x for edges e: the number of edges below x (x <= e[k] lands in bin k); NaN gets bin edges.length + 1. */
function binOf(edges: number[], x: number): number {
  if (Number.isNaN(x)) return edges.length + 1;
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= edges[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Fits `rows` (n x f, row-major) to `targets` with squared loss. Yields to the event loop after every tree
 * (tens of milliseconds each at 60 k rows), so a service that trains one stays responsive.
 */
export async function trainGbdt(rows: Float64Array, targets: ArrayLike<number>, featureNames: readonly string[], options: GbdtOptions = {}): Promise<GbdtModel> {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS;
  const f = featureNames.length;
  const n = targets.length;
  if (f === 0 || n === 0) throw invalidArgument('trainGbdt needs at least one feature and one row.');
  if (rows.length !== n * f) throw invalidArgument(`trainGbdt: ${rows.length} values for ${n} rows of ${f} features.`);
  if (!(o.bins >= 2 && o.bins <= 255)) throw invalidArgument(`bins must be in [2, 255], got ${o.bins}.`);
  for (const k of ['rounds', 'depth', 'minLeaf'] as const) if (!(Number.isInteger(o[k]) && o[k] > 0)) throw invalidArgument(`${k} must be a positive integer, got ${o[k]}.`);
  for (let i = 0; i < n; i++) if (!Number.isFinite(targets[i])) throw invalidArgument(`trainGbdt: target ${i} is ${targets[i]}; targets must be finite numbers.`);
  for (let i = 0; i < rows.length; i++) {
    if (rows[i] === Infinity || rows[i] === -Infinity) throw invalidArgument(`trainGbdt: row ${Math.floor(i / f)} feature ${featureNames[i % f]} is ${rows[i]}; features must be finite numbers or NaN (missing).`);
  }
  if (!(o.learningRate > 0 && o.subsample > 0 && o.subsample <= 1 && o.lambda >= 0)) throw invalidArgument('learningRate > 0, subsample in (0, 1] and lambda >= 0 are required.');

  const edges: number[][] = [];
  const binned: Uint8Array[] = [];
  for (let j = 0; j < f; j++) {
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) col[i] = rows[i * f + j];
    const e = binEdges(col, o.bins);
    edges.push(e);
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = binOf(e, col[i]);
    binned.push(b);
  }
  let base = 0;
  for (let i = 0; i < n; i++) base += targets[i];
  base /= n;
  const pred = new Float64Array(n).fill(base);
  const grad = new Float64Array(n);
  const node = new Int32Array(n);
  const rng = createRng(o.seed);
  const trees: GbdtTree[] = [];
  // Finite values take at most `bins` bins (0 .. edges.length), NaN the one after.
  const maxBins = o.bins + 2;

  for (let round = 0; round < o.rounds; round++) {
    if (round > 0) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < n; i++) {
      grad[i] = targets[i] - pred[i];
      node[i] = o.subsample < 1 && rng() >= o.subsample ? -1 : 0;
    }
    const tree: GbdtTree = { feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0] };
    // Level by level: `open` are the node ids of this depth that may still split.
    let open = [0];
    for (let depth = 0; depth < o.depth && open.length > 0; depth++) {
      const slot = new Map(open.map((id, k) => [id, k]));
      const sum = new Float64Array(open.length * f * maxBins);
      const cnt = new Float64Array(open.length * f * maxBins);
      for (let i = 0; i < n; i++) {
        const k = node[i] >= 0 ? slot.get(node[i]) : undefined;
        if (k === undefined) continue;
        const g = grad[i];
        const baseOff = k * f * maxBins;
        for (let j = 0; j < f; j++) {
          const at = baseOff + j * maxBins + binned[j][i];
          sum[at] += g;
          cnt[at] += 1;
        }
      }
      const next: number[] = [];
      const splitOf = new Map<number, { feature: number; bin: number; left: number; right: number }>();
      open.forEach((id, k) => {
        let gTot = 0;
        let nTot = 0;
        for (let b = 0; b < maxBins; b++) {
          gTot += sum[k * f * maxBins + b];
          nTot += cnt[k * f * maxBins + b];
        }
        // A node no sampled row reached (possible with subsampling) has value 0, not 0 / 0.
        const denom = nTot + o.lambda;
        tree.value[id] = denom > 0 ? gTot / denom : 0;
        const parentScore = denom > 0 ? (gTot * gTot) / denom : 0;
        let best = { gain: 1e-12, feature: -1, bin: -1 };
        for (let j = 0; j < f; j++) {
          let gl = 0;
          let nl = 0;
          const off = k * f * maxBins + j * maxBins;
          // b = edges.length: every finite value left, the missing ones right.
          for (let b = 0; b <= edges[j].length; b++) {
            gl += sum[off + b];
            nl += cnt[off + b];
            const nr = nTot - nl;
            if (nl < o.minLeaf) continue;
            if (nr < o.minLeaf) break;
            const gr = gTot - gl;
            const gain = (gl * gl) / (nl + o.lambda) + (gr * gr) / (nr + o.lambda) - parentScore;
            if (gain > best.gain) best = { gain, feature: j, bin: b };
          }
        }
        if (best.feature < 0) return;
        const left = tree.feature.length;
        for (const child of [left, left + 1]) {
          tree.feature.push(-1);
          tree.threshold.push(0);
          tree.left.push(-1);
          tree.right.push(-1);
          tree.value.push(0);
          next.push(child);
        }
        tree.feature[id] = best.feature;
        tree.threshold[id] = best.bin < edges[best.feature].length ? edges[best.feature][best.bin] : Number.MAX_VALUE;
        tree.left[id] = left;
        tree.right[id] = left + 1;
        splitOf.set(id, { feature: best.feature, bin: best.bin, left, right: left + 1 });
      });
      for (let i = 0; i < n; i++) {
        const s = node[i] >= 0 ? splitOf.get(node[i]) : undefined;
        if (s) node[i] = binned[s.feature][i] <= s.bin ? s.left : s.right;
      }
      open = next;
    }
    // Leaves of the last level get their values from the rows that reached them.
    if (open.length) {
      const g = new Float64Array(tree.value.length);
      const c = new Float64Array(tree.value.length);
      for (let i = 0; i < n; i++) if (node[i] >= 0) {
        g[node[i]] += grad[i];
        c[node[i]] += 1;
      }
      for (const id of open) tree.value[id] = c[id] + o.lambda > 0 ? g[id] / (c[id] + o.lambda) : 0;
    }
    for (let id = 0; id < tree.value.length; id++) tree.value[id] *= o.learningRate;
    trees.push(tree);
    for (let i = 0; i < n; i++) pred[i] += predictTree(tree, rows, i * f);
  }
  return { format: 'minielm-gbdt-v1', features: [...featureNames], base, learningRate: o.learningRate, trees };
}

function predictTree(tree: GbdtTree, rows: ArrayLike<number>, offset: number): number {
  let id = 0;
  while (tree.feature[id] >= 0) {
    const x = rows[offset + tree.feature[id]];
    id = x <= tree.threshold[id] ? tree.left[id] : tree.right[id];
  }
  return tree.value[id];
}

/** Predictions for n rows of the model's features (row-major). */
export function predictGbdt(model: GbdtModel, rows: ArrayLike<number>): Float64Array {
  const f = model.features.length;
  const n = rows.length / f;
  if (!Number.isInteger(n)) throw invalidArgument(`predictGbdt: ${rows.length} values are not rows of ${f} features.`);
  const out = new Float64Array(n).fill(model.base);
  for (const tree of model.trees) for (let i = 0; i < n; i++) out[i] += predictTree(tree, rows, i * f);
  return out;
}

/**
 * Checks a parsed JSON document is a GBDT model of this format (for loading): every tree's arrays of one length, split
 * features in range with finite thresholds, children after their parent (so prediction always ends at a leaf),
 * finite leaf values.
 */
export function isGbdtModel(x: unknown): x is GbdtModel {
  const m = x as GbdtModel;
  if (!m || m.format !== 'minielm-gbdt-v1' || !Array.isArray(m.features) || !Array.isArray(m.trees) || !Number.isFinite(m.base)) return false;
  const f = m.features.length;
  return m.trees.every((t) => {
    if (!t || ![t.feature, t.threshold, t.left, t.right, t.value].every(Array.isArray)) return false;
    const size = t.feature.length;
    if (size === 0 || [t.threshold, t.left, t.right, t.value].some((a) => a.length !== size)) return false;
    for (let id = 0; id < size; id++) {
      const j = t.feature[id];
      if (!Number.isFinite(t.value[id])) return false;
      if (j === -1) continue;
      if (!Number.isInteger(j) || j < 0 || j >= f || !Number.isFinite(t.threshold[id])) return false;
      for (const child of [t.left[id], t.right[id]]) if (!Number.isInteger(child) || child <= id || child >= size) return false;
    }
    return true;
  });
}
