// Meilisearch retriever through the official `meilisearch` client. index() recreates the index, applies the
// settings first (so documents are indexed once, with the final searchable/filterable attributes), then adds
// documents in batches and waits on every task; search() sends query batches with multiSearch. Every request
// has a timeout and is retried with exponential backoff on network errors, timeouts, 429 and 5xx.
import { Meilisearch, MeilisearchApiError, MeilisearchRequestError, MeilisearchRequestTimeOutError, MeilisearchTaskTimeOutError, type EnqueuedTaskPromise, type Task } from 'meilisearch';
import { setTimeout as sleep } from 'node:timers/promises';
import { MinielmError } from '../errors.ts';
import type { Product } from '../data/types.ts';
import type { ProductField, Retriever } from './types.ts';

export interface MeilisearchRetrieverOptions {
  /** Server URL, e.g. http://127.0.0.1:7700. */
  url: string;
  apiKey?: string;
  /** Index uid. Default 'minielm-products'. */
  indexUid?: string;
  /** Searchable attributes, most important first (Meilisearch ranks by attribute order). Default title, brand, color, bullets, description. */
  searchableAttributes?: ProductField[];
  /** Filterable attributes. Default brand, color. */
  filterableAttributes?: string[];
  /** Per-request timeout in ms. Default 10,000. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 3. */
  retries?: number;
  /** First backoff delay in ms, doubled on every retry. Default 250. */
  backoffMs?: number;
  /** Documents per addDocuments call. Default 5,000. */
  documentBatchSize?: number;
  /** Queries per multiSearch call. Default 100. */
  queryBatchSize?: number;
  /** How long to wait for one indexing task, in ms. Default 300,000. */
  taskTimeoutMs?: number;
}

const VALID_ID = /^[A-Za-z0-9_-]{1,511}$/;

export class MeilisearchRetriever implements Retriever {
  readonly url: string;
  readonly indexUid: string;
  private readonly client: Meilisearch;
  private readonly options: Required<Omit<MeilisearchRetrieverOptions, 'apiKey'>>;

  constructor(options: MeilisearchRetrieverOptions) {
    if (!options?.url || !/^https?:\/\//.test(options.url)) {
      throw new MinielmError('MINIELM_INVALID_ARGUMENT', `Meilisearch url must start with http:// or https://, got "${options?.url}" (pass --meilisearch-url or set MEILISEARCH_URL).`);
    }
    this.options = {
      url: options.url,
      indexUid: options.indexUid ?? 'minielm-products',
      searchableAttributes: options.searchableAttributes ?? ['title', 'brand', 'color', 'bullets', 'description'],
      filterableAttributes: options.filterableAttributes ?? ['brand', 'color'],
      timeoutMs: options.timeoutMs ?? 10_000,
      retries: options.retries ?? 3,
      backoffMs: options.backoffMs ?? 250,
      documentBatchSize: options.documentBatchSize ?? 5_000,
      queryBatchSize: options.queryBatchSize ?? 100,
      taskTimeoutMs: options.taskTimeoutMs ?? 300_000,
    };
    this.url = options.url;
    this.indexUid = this.options.indexUid;
    this.client = new Meilisearch({ host: options.url, apiKey: options.apiKey, timeout: this.options.timeoutMs });
  }

  /** Runs `request` with retries; maps the last failure to a MinielmError naming the server and the step. */
  private async withRetries<T>(step: string, request: () => Promise<T>): Promise<T> {
    const { retries, backoffMs } = this.options;
    for (let attempt = 0; ; attempt++) {
      try {
        return await request();
      } catch (err) {
        if (attempt < retries && isTransient(err)) {
          await sleep(backoffMs * 2 ** attempt);
          continue;
        }
        throw this.describe(step, err, attempt + 1);
      }
    }
  }

  private describe(step: string, err: unknown, attempts: number): Error {
    const where = `Meilisearch at ${this.url}`;
    if (err instanceof MinielmError) return err;
    if (err instanceof MeilisearchTaskTimeOutError) {
      return new MinielmError('MINIELM_TIMEOUT', `${where}: "${step}" was not done after ${this.options.taskTimeoutMs} ms: the server is still indexing; raise taskTimeoutMs.`, { cause: err });
    }
    if (err instanceof MeilisearchRequestError) {
      const cause = err.cause;
      if (cause instanceof MeilisearchRequestTimeOutError) {
        return new MinielmError('MINIELM_TIMEOUT', `${where} did not answer "${step}" within ${this.options.timeoutMs} ms (${attempts} attempts): check the server load or raise the timeout.`, { cause: err });
      }
      const reason = networkReason(cause);
      return new MinielmError('MINIELM_UNREACHABLE', `${where} is unreachable during "${step}" after ${attempts} attempts (${reason}): start the server or fix --meilisearch-url / MEILISEARCH_URL.`, { cause: err });
    }
    if (err instanceof MeilisearchApiError) {
      const status = err.response.status;
      const detail = err.cause?.message ?? err.message;
      if (status === 401 || status === 403) {
        return new MinielmError('MINIELM_INVALID_ARGUMENT', `${where} refused "${step}" (HTTP ${status}: ${detail}): pass a valid key with --meilisearch-key / MEILISEARCH_KEY.`, { cause: err });
      }
      return new MinielmError('MINIELM_BAD_FILE', `${where} rejected "${step}" (HTTP ${status}: ${detail}).`, { cause: err });
    }
    return new MinielmError('MINIELM_UNREACHABLE', `${where} failed during "${step}": ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }

  private async waitTask(step: string, enqueue: () => EnqueuedTaskPromise): Promise<Task> {
    const enqueued = await this.withRetries(step, () => enqueue());
    const task = await this.withRetries(`${step}: wait for task ${enqueued.taskUid}`, () =>
      this.client.tasks.waitForTask(enqueued.taskUid, { timeout: this.options.taskTimeoutMs }),
    );
    if (task.status !== 'succeeded') {
      throw new MinielmError('MINIELM_BAD_FILE', `Meilisearch at ${this.url}: task ${task.uid} (${step}) ${task.status}: ${task.error?.message ?? 'no error message'}.`);
    }
    return task;
  }

  async index(products: readonly Product[]): Promise<void> {
    for (const [i, p] of products.entries()) {
      if (typeof p?.id !== 'string' || !VALID_ID.test(p.id)) {
        throw new MinielmError('MINIELM_INVALID_ARGUMENT', `product #${i} id "${p?.id}" is not a valid Meilisearch document id (letters, digits, - and _ only, at most 511 characters).`);
      }
    }
    const uid = this.indexUid;
    await this.dropIndex();
    await this.waitTask(`create index ${uid}`, () => this.client.createIndex(uid, { primaryKey: 'id' }));
    const index = this.client.index<Record<string, string>>(uid);
    // Settings before documents: a settings change after the additions would re-index everything.
    await this.waitTask(`update settings of ${uid}`, () =>
      index.updateSettings({
        searchableAttributes: this.options.searchableAttributes,
        filterableAttributes: this.options.filterableAttributes,
      }),
    );
    const size = this.options.documentBatchSize;
    for (let start = 0; start < products.length; start += size) {
      const batch = products.slice(start, start + size).map(toDocument);
      await this.waitTask(`add documents ${start}..${start + batch.length - 1} to ${uid}`, () => index.addDocuments(batch));
    }
  }

  async search(queries: readonly string[], k: number): Promise<string[][]> {
    if (!Number.isInteger(k) || k < 1) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `k (results per query) must be a positive integer, got ${k}.`);
    const out: string[][] = [];
    const size = this.options.queryBatchSize;
    for (let start = 0; start < queries.length; start += size) {
      const batch = queries.slice(start, start + size);
      const response = await this.withRetries(`multiSearch of ${batch.length} queries`, () =>
        this.client.multiSearch({
          queries: batch.map((q) => ({ indexUid: this.indexUid, q, limit: k, attributesToRetrieve: ['id'] })),
        }),
      );
      for (const result of response.results) out.push(result.hits.map((h) => String(h.id)));
    }
    return out;
  }

  /** Deletes the index (the retriever owns it) and waits until it is gone; a missing index is fine. */
  async drop(): Promise<void> {
    await this.dropIndex();
  }

  private async dropIndex(): Promise<void> {
    const step = `delete index ${this.indexUid}`;
    const enqueued = await this.withRetries(step, () => this.client.deleteIndex(this.indexUid));
    const task = await this.withRetries(`${step}: wait for task ${enqueued.taskUid}`, () =>
      this.client.tasks.waitForTask(enqueued.taskUid, { timeout: this.options.taskTimeoutMs }),
    );
    if (task.status !== 'succeeded' && task.error?.code !== 'index_not_found') {
      throw new MinielmError('MINIELM_BAD_FILE', `Meilisearch at ${this.url}: task ${task.uid} (${step}) ${task.status}: ${task.error?.message ?? 'no error message'}.`);
    }
  }
}

function toDocument(p: Product): Record<string, string> {
  const doc: Record<string, string> = { id: p.id, title: p.title };
  if (p.brand) doc.brand = p.brand;
  if (p.color) doc.color = p.color;
  if (p.bullets) doc.bullets = p.bullets;
  if (p.description) doc.description = p.description;
  return doc;
}

function isTransient(err: unknown): boolean {
  if (err instanceof MeilisearchRequestError) return true;
  if (err instanceof MeilisearchApiError) {
    const status = err.response.status;
    return status === 429 || status >= 500;
  }
  return false;
}

function networkReason(cause: unknown): string {
  const inner = (cause as { cause?: { code?: string; message?: string } })?.cause;
  return inner?.code ?? inner?.message ?? (cause as Error)?.message ?? 'network error';
}
