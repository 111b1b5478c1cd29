// safetensors reader/writer (the format Hugging Face uses): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}} plus optional "__metadata__", then the raw tensor bytes.
// Parsed in TypeScript because the header is JSON: Node's parser is safer than a hand-written C++ one.
// Every inconsistency is reported with the file name, so a truncated or tampered file never reaches C++.
import { open } from 'node:fs/promises';
import { MinielmError, describeValue } from '../errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

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

/** Decodes `count` little-endian values of `dtype` to float32 (on the calling thread). */
export function decodeTensor(bytes: Uint8Array, dtype: Dtype, count: number): Float32Array {
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

/** One tensor of a safetensors file: where its bytes lie in the whole file's buffer. */
export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /** Element count (product of the shape). */
  count: number;
  /** Byte range in the file's buffer (absolute, header included). */
  begin: number;
  end: number;
}

export interface SafetensorsIndex {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/**
 * Checks the header and every tensor's byte range without decoding any data (cheap for any file size):
 * the engine converts the values in a worker (lib/model/model.ts).
 */
export function parseSafetensorsHeader(buf: Uint8Array, file: string, fileSize = buf?.byteLength): SafetensorsIndex {
  if (!(buf instanceof Uint8Array)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `parseSafetensors needs the file's bytes (a Uint8Array or Buffer), got ${describeValue(buf)}`);
  if (buf.byteLength < 8) throw bad(file, `only ${buf.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > fileSize || 8 + headerLen > buf.byteLength)
    throw bad(file, `header length ${headerLen} does not fit in the file (${fileSize} bytes): truncated?`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch (err) {
    throw bad(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(file, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object') metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw bad(file, `entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !Object.hasOwn(BYTES, e.dtype)) throw bad(file, `tensor "${name}" has unsupported dtype ${String(e.dtype)} (supported: F32, F16, BF16, F64)`);
    const dtype = e.dtype as Dtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(file, `tensor "${name}" has an invalid shape`);
    const shape = e.shape as number[];
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(file, `tensor "${name}" has invalid data_offsets`);
    const [begin, end] = e.data_offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLen) throw bad(file, `tensor "${name}" points past the end of the data (offsets ${begin}..${end}, data ${dataLen} bytes): truncated?`);
    if (end - begin !== count * BYTES[dtype])
      throw bad(file, `tensor "${name}" holds ${end - begin} bytes but shape [${shape.join(', ')}] in ${dtype} needs ${count * BYTES[dtype]}`);
    ranges.push([begin, end, name]);
    tensors.set(name, { dtype, shape, count, begin: dataStart + begin, end: dataStart + end });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++)
    if (ranges[i][0] < ranges[i - 1][1]) throw bad(file, `tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`);
  return { tensors, metadata };
}

/** Parses and decodes every tensor to float32 on the calling thread (fine for small files and tests). */
export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsFile {
  const index = parseSafetensorsHeader(buf, file);
  const tensors = new Map<string, LoadedTensor>();
  for (const [name, t] of index.tensors) tensors.set(name, { dtype: t.dtype, shape: t.shape, data: decodeTensor(buf.subarray(t.begin, t.end), t.dtype, t.count) });
  return { tensors, metadata: index.metadata };
}

/**
 * Reads and checks only the header of a safetensors file (the tensors stay on disk: the engine reads them
 * itself, in a worker); `size` is the file's length.
 */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsIndex & { size: number }> {
  if (typeof file !== 'string' || file.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `a safetensors file path must be a non-empty string, got ${describeValue(file)}`);
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MinielmError(code === 'ENOENT' ? 'MINIELM_NOT_FOUND' : 'MINIELM_BAD_FILE', `${file}: cannot read (${(err as Error).message})`);
  }
  let head: Buffer, size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
    const lenBytes = Buffer.alloc(8);
    await fh.read(lenBytes, 0, Math.min(8, size), 0);
    const headerLen = size >= 8 ? Number(lenBytes.readBigUInt64LE(0)) : 0;
    const want = Math.min(size, 8 + Math.min(headerLen, MAX_HEADER));
    head = Buffer.alloc(want);
    await fh.read(head, 0, want, 0);
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${file}: cannot read (${(err as Error).message})`);
  } finally {
    await fh.close();
  }
  return { ...parseSafetensorsHeader(head, file, size), size };
}

/** The bytes [begin, end) of a file. */
export async function readFileRange(file: string, begin: number, end: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const out = Buffer.alloc(end - begin);
    let pos = 0;
    while (pos < out.length) {
      const { bytesRead } = await fh.read(out, pos, Math.min(READ_CHUNK, out.length - pos), begin + pos);
      if (bytesRead === 0) throw new MinielmError('MINIELM_BAD_FILE', `${file}: shorter than its header says (truncated while reading?)`);
      pos += bytesRead;
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** Reads a file (off the event loop) and checks its header; the data stays raw in `buffer`. */
export async function readSafetensorsIndex(file: string): Promise<SafetensorsIndex & { buffer: Buffer }> {
  const buffer = await readWhole(file);
  return { ...parseSafetensorsHeader(buffer, file), buffer };
}

/** Bytes per read call: large enough that a 500 MB checkpoint takes a few dozen thread-pool round trips. */
const READ_CHUNK = 32 * 1024 * 1024;

async function readWhole(file: string): Promise<Buffer> {
  if (typeof file !== 'string' || file.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `a safetensors file path must be a non-empty string, got ${describeValue(file)}`);
  try {
    // fs.promises.readFile reads in 512 KiB pieces, each a round trip through the main thread; one buffer
    // of the file's size filled by large reads is several times faster for checkpoints.
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const buf = Buffer.allocUnsafe(size);
      let pos = 0;
      while (pos < size) {
        const { bytesRead } = await fh.read(buf, pos, Math.min(READ_CHUNK, size - pos), pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
      }
      return pos === size ? buf : buf.subarray(0, pos);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new MinielmError(code === 'ENOENT' ? 'MINIELM_NOT_FOUND' : 'MINIELM_BAD_FILE', `${file}: cannot read (${(err as Error).message})`);
  }
}

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readWhole(file), file);
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * A float32 safetensors file laid out for the given tensors, in order: a buffer of the whole file with the
 * header written, and each tensor's byte offset in it, for the caller (or the engine, in a worker) to fill.
 */
export function layoutSafetensors(tensors: { name: string; shape: number[] }[], metadata: Record<string, string> = {}): { buffer: Buffer; offsets: number[] } {
  const { header, offsets, size } = safetensorsHeader(tensors, metadata);
  const buffer = Buffer.allocUnsafe(size);
  header.copy(buffer, 0);
  return { buffer, offsets };
}

/**
 * The header bytes (length prefix included) of a float32 safetensors file holding `tensors` in order, each
 * tensor's byte offset in the file and the file's size.
 */
export function safetensorsHeader(tensors: { name: string; shape: number[] }[], metadata: Record<string, string> = {}): { header: Buffer; offsets: number[]; size: number } {
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new MinielmError('MINIELM_INVALID_ARGUMENT', `safetensors metadata "${k}" must be a string, got ${describeValue(v)}`);
  if (Object.keys(metadata).length) meta.__metadata__ = metadata;
  let offset = 0;
  const rel: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    meta[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + n * 4] };
    rel.push(offset);
    offset += n * 4;
  }
  let json = JSON.stringify(meta);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const jsonBytes = Buffer.from(json, 'utf8');
  const header = Buffer.allocUnsafe(8 + jsonBytes.length);
  header.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  jsonBytes.copy(header, 8);
  return { header, offsets: rel.map((o) => header.length + o), size: header.length + offset };
}

/** Serialises float32 tensors in the given order. */
export function encodeSafetensors(tensors: TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `tensor "${t.name}": shape [${t.shape.join(', ')}] needs ${n} values, got ${t.data.length}`);
  }
  const { buffer, offsets } = layoutSafetensors(tensors, metadata);
  tensors.forEach((t, i) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(buffer, offsets[i]));
  return buffer;
}

/** Writes to a temporary file in the same folder, flushes it, then renames: readers never see half a file. */
export { writeFileAtomic };

export async function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
