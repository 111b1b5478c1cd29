// safetensors reader/writer (the format Hugging Face uses): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}} plus optional "__metadata__", then the raw tensor bytes.
// Parsed in TypeScript because the header is JSON: Node's parser is safer than a hand-written C++ one.
// Every inconsistency is reported with the file name, so a truncated or tampered file never reaches C++.
import { open, readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { MinielmError } from '../errors.ts';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'F64';

export interface LoadedTensor {
  dtype: Dtype;
  shape: number[];
  /** Values converted to float32. */
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const MAX_HEADER = 100 * 1024 * 1024;

function bad(file: string, what: string): MinielmError {
  return new MinielmError('MINIELM_BAD_FILE', `${file}: ${what}. The file is not a valid safetensors checkpoint; re-save or re-download it.`);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decode(bytes: Uint8Array, dtype: Dtype, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u32[i] = view.getUint16(i * 2, true) << 16;
      break;
    }
  }
  return out;
}

export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsFile {
  if (buf.byteLength < 8) throw bad(file, `only ${buf.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > buf.byteLength)
    throw bad(file, `header length ${headerLen} does not fit in the file (${buf.byteLength} bytes): truncated?`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch (err) {
    throw bad(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(file, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, LoadedTensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object') metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw bad(file, `entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in BYTES)) throw bad(file, `tensor "${name}" has unsupported dtype ${String(e.dtype)} (supported: F32, F16, BF16, F64)`);
    const dtype = e.dtype as Dtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(file, `tensor "${name}" has an invalid shape`);
    const shape = e.shape as number[];
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every((d) => Number.isInteger(d) && d >= 0))
      throw bad(file, `tensor "${name}" has invalid data_offsets`);
    const [begin, end] = e.data_offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLen) throw bad(file, `tensor "${name}" points past the end of the data (offsets ${begin}..${end}, data ${dataLen} bytes): truncated?`);
    if (end - begin !== count * BYTES[dtype])
      throw bad(file, `tensor "${name}" holds ${end - begin} bytes but shape [${shape.join(', ')}] in ${dtype} needs ${count * BYTES[dtype]}`);
    ranges.push([begin, end, name]);
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    tensors.set(name, { dtype, shape, data: decode(bytes, dtype, count) });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++)
    if (ranges[i][0] < ranges[i - 1][1]) throw bad(file, `tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`);
  return { tensors, metadata };
}

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MinielmError(code === 'ENOENT' ? 'MINIELM_NOT_FOUND' : 'MINIELM_BAD_FILE', `${file}: cannot read (${(err as Error).message})`);
  }
  return parseSafetensors(buf, file);
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Serialises float32 tensors in the given order. */
export function encodeSafetensors(tensors: TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `tensor "${t.name}": shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n * 4] };
    offset += n * 4;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    bytes.copy(out, pos);
    pos += bytes.length;
  }
  return out;
}

/** Writes to a temporary file in the same folder, flushes it, then renames: readers never see half a file. */
export async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(tmp, data);
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export async function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
