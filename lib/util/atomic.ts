// Crash-safe writes for every state file minielm keeps: after a SIGKILL (or a power cut) at any point, a
// reader finds the last complete version, never a half-written file or a folder that mixes two saves.
//
// Single files: write a temporary sibling, fsync it, rename it over the target, fsync the folder.
//
// Folders written as a set (a checkpoint: config.json, model.safetensors, training_state.safetensors,
// trainer_state.json, tokenizer.json, ...) keep their plain Hugging Face layout and are replaced whole:
//   1. every file goes to `<dir>.minielm-tmp` (files of `<dir>` the save does not rewrite are hard-linked in),
//      then each file and the folder are fsynced;
//   2. rename `<dir>.minielm-tmp` -> `<dir>.minielm-new`: the commit point, the new set is complete;
//   3. rename `<dir>` -> `<dir>.minielm-old`, rename `<dir>.minielm-new` -> `<dir>`, delete the old one.
// A kill before 2 leaves `<dir>` as it was; after 2 the new set is complete under one of two names.
// Readers (resolveDir) take `<dir>.minielm-new` if present, else `<dir>`, else `<dir>.minielm-old`, and never
// change anything; the next writer (recoverDir) first completes an interrupted step 3.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { appendFile, copyFile, link, lstat, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { invalidArgument } from '../errors.ts';

const TMP = '.minielm-tmp';
const NEW = '.minielm-new';
const OLD = '.minielm-old';
const INPLACE = '.minielm-staging';

// Leftovers of a writeFileAtomic a kill interrupted (ours and safetensors.ts's): never carried into a new set.
const TORN = /\.tmp-\d+-[a-z0-9]+$/;

function tmpName(file: string): string {
  return `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Flushes a folder's entries (a rename is durable only once its folder is). Not every platform can. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows cannot open folders; some file systems refuse fsync on them. Rename atomicity still holds.
  } finally {
    await fh?.close();
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Bytes per write call: FileHandle.writeFile goes in 512 KiB pieces, slow for 500 MB checkpoints. */
const WRITE_CHUNK = 32 * 1024 * 1024;

async function writeAll(fh: Awaited<ReturnType<typeof open>>, data: string | Uint8Array): Promise<void> {
  if (typeof data === 'string') return fh.writeFile(data);
  let pos = 0;
  while (pos < data.byteLength) {
    const { bytesWritten } = await fh.write(data, pos, Math.min(WRITE_CHUNK, data.byteLength - pos), pos);
    pos += bytesWritten;
  }
}

/** Writes `data` to `file` so that a reader sees the old content or the new one, never a mix or a prefix. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomicWith(file, async (tmp) => {
    const fh = await open(tmp, 'w');
    try {
      await writeAll(fh, data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/**
 * writeFileAtomic for a writer of its own: `write(tmp)` creates and fsyncs the temporary sibling (e.g. the
 * engine writing a checkpoint from its own memory), which then replaces `file` by rename.
 */
export async function writeFileAtomicWith(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = tmpName(file);
  try {
    await write(tmp);
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(file));
}

/** writeFileAtomic for synchronous callers. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = tmpName(file);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw err;
  }
  try {
    const fd = openSync(dirname(file), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // as fsyncDir
  }
}

// Staging folders being filled right now: a save into one of them (Tokenizer.save from inside Model.save's
// extraFiles) writes straight into it, as part of the enclosing set.
const staging = new Set<string>();

/** The folder a reader should read for `dir`: the last complete set, even mid-swap or after a kill. Changes nothing. */
export async function resolveDir(dir: string): Promise<string> {
  // Anything but a path is left for the caller to refuse with its own message.
  if (typeof dir !== 'string' || dir.length === 0) return dir;
  const d = resolve(dir);
  if (staging.has(d)) return dir;
  if (await exists(d + NEW)) return d + NEW;
  if (await exists(d)) return dir;
  if (await exists(d + OLD)) return d + OLD;
  return dir;
}

async function finishSwap(d: string): Promise<void> {
  if (await exists(d)) {
    await rm(d + OLD, { recursive: true, force: true });
    await rename(d, d + OLD);
  }
  await rename(d + NEW, d);
  await fsyncDir(dirname(d));
  await rm(d + OLD, { recursive: true, force: true });
}

/**
 * The writer's side of resolveDir: completes a swap a kill interrupted (or rolls back to the old set when
 * no complete new one exists), and removes leftovers, so that `<dir>` itself holds the last complete set.
 */
export async function recoverDir(dir: string): Promise<void> {
  const d = resolve(dir);
  if (staging.has(d)) return;
  if (await exists(d + NEW)) await finishSwap(d);
  else if (!(await exists(d)) && (await exists(d + OLD))) {
    await rename(d + OLD, d);
    await fsyncDir(dirname(d));
  } else await rm(d + OLD, { recursive: true, force: true });
  await rm(d + TMP, { recursive: true, force: true });
}

async function linkTree(from: string, to: string): Promise<void> {
  const s = await lstat(from);
  if (s.isDirectory()) {
    await mkdir(to, { recursive: true });
    for (const e of await readdir(from)) await linkTree(join(from, e), join(to, e));
  } else if (s.isFile()) {
    // Savers never modify a file in place (they replace it), so old and new sets can share it.
    try {
      await link(from, to);
    } catch {
      await copyFile(from, to);
    }
  }
  // Symlinks and other entries are not part of a model folder; they are left behind.
}

async function fsyncTree(path: string): Promise<void> {
  const s = await lstat(path);
  if (s.isDirectory()) {
    for (const e of await readdir(path)) await fsyncTree(join(path, e));
    await fsyncDir(path);
  } else if (s.isFile()) await fsyncFile(path);
}

export interface ReplaceDirOptions {
  /** Entries of the current `<dir>` that must not be carried into the new set unless `fill` writes them again. */
  drop?: readonly string[];
}

/**
 * Replaces folder `dir` by the files `fill` writes into the staging folder it is given, as one set: after a
 * kill at any point, resolveDir(dir) gives the old set or the new one, complete. Entries of the old `<dir>`
 * that `fill` does not write (a tokenizer next to the weights) are carried over, except those in `drop`.
 */
export async function replaceDir(dir: string, fill: (stage: string) => Promise<void>, options: ReplaceDirOptions = {}): Promise<void> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument(`the folder to save into must be a non-empty path, got ${JSON.stringify(dir)}`);
  const d = resolve(dir);
  if (staging.has(d)) {
    // Part of an enclosing set: that replaceDir commits it.
    await fill(dir);
    return;
  }
  const cwd = resolve(process.cwd());
  if (d === dirname(d) || cwd === d || cwd.startsWith(d + sep)) return replaceInPlace(d, fill, options);
  await mkdir(dirname(d), { recursive: true });
  await recoverDir(d);
  const tmp = d + TMP;
  await mkdir(tmp);
  staging.add(tmp);
  try {
    await fill(tmp);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    staging.delete(tmp);
  }
  if (await exists(d)) {
    if (!(await stat(d)).isDirectory()) throw new Error(`${dir} exists and is not a folder`);
    const written = new Set(await readdir(tmp));
    const drop = new Set(options.drop ?? []);
    for (const e of await readdir(d)) if (!written.has(e) && !drop.has(e) && !TORN.test(e) && e !== INPLACE) await linkTree(join(d, e), join(tmp, e));
  }
  await fsyncTree(tmp);
  await rename(tmp, d + NEW);
  await fsyncDir(dirname(d));
  await finishSwap(d);
}

// The process's working folder (or a root) cannot be renamed away: stage inside it, then move each file in
// by rename. Every file is whole, but the set is not atomic; saving into a subfolder is.
async function replaceInPlace(d: string, fill: (stage: string) => Promise<void>, options: ReplaceDirOptions): Promise<void> {
  await mkdir(d, { recursive: true });
  const stage = join(d, INPLACE);
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage);
  staging.add(stage);
  try {
    await fill(stage);
  } catch (err) {
    await rm(stage, { recursive: true, force: true });
    throw err;
  } finally {
    staging.delete(stage);
  }
  const written = new Set(await readdir(stage));
  await fsyncTree(stage);
  for (const e of options.drop ?? []) if (!written.has(e)) await rm(join(d, e), { recursive: true, force: true });
  for (const e of written) {
    // A file is replaced atomically by rename; a folder in the way has to go first.
    if ((await exists(join(d, e))) && (await lstat(join(d, e))).isDirectory()) await rm(join(d, e), { recursive: true, force: true });
    await rename(join(stage, e), join(d, e));
  }
  await fsyncDir(d);
  await rm(stage, { recursive: true, force: true });
}

/** Names the staging / committed / retired siblings of `dir` use (tests and tools that list a folder). */
export function swapSiblings(dir: string): { tmp: string; committed: string; old: string } {
  const d = resolve(dir);
  return { tmp: d + TMP, committed: d + NEW, old: d + OLD };
}

// Files whose torn tail (a line cut by a kill) was already checked by this process.
const tailChecked = new Set<string>();

/**
 * Appends `text` (one or more whole lines, each ending in "\n") to an append-only log. The first append of
 * a process cuts a torn last line a kill left behind, so the new record never fuses with it.
 */
export async function appendLines(file: string, text: string): Promise<void> {
  const key = resolve(file);
  if (!tailChecked.has(key)) {
    await cutTornTail(file);
    tailChecked.add(key);
  }
  await appendFile(file, text);
}

/** Drops a last line without its "\n" (the remains of an append a kill interrupted). */
export async function cutTornTail(file: string): Promise<void> {
  let fh;
  try {
    fh = await open(file, 'r+');
  } catch {
    return;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return;
    const chunk = Buffer.alloc(Math.min(size, 1 << 16));
    let end = size;
    // Find the last "\n"; everything after it is the torn line.
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = end - start;
      await fh.read(chunk, 0, n, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) {
        const keep = start + nl + 1;
        if (keep < size) await fh.truncate(keep);
        return;
      }
      end = start;
    }
    await fh.truncate(0);
  } finally {
    await fh.close();
  }
}

/** Parses JSON Lines, skipping blank lines and lines that do not parse (a torn tail, a foreign line). */
export function parseJsonLines<T = unknown>(text: string): { records: T[]; skipped: number } {
  const records: T[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line) as T);
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}
