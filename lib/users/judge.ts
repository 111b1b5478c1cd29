// The one interface the online trainer calls, whichever simulated user sits behind it.
import { invalidArgument } from '../errors.ts';
import type { Engagement, ProductLike } from '../rewards/types.ts';
import type { UserProfile } from './profiles.ts';

export interface JudgeRequest {
  profile: UserProfile;
  /** The ORIGINAL query: the user's intent, whichever rewrite retrieved the products. */
  query: string;
  /** The rewrite's results, in the order the user sees them. */
  products: ProductLike[];
  /** M1 gains in [0, 1] per product when the caller already has them (the reward computes them anyway). */
  relevance?: number[];
}

export interface JudgeBatchOptions {
  signal?: AbortSignal;
}

export interface Judge {
  readonly name: string;
  /** One Engagement per request, in order. */
  judgeBatch(requests: JudgeRequest[], options?: JudgeBatchOptions): Promise<Engagement[]>;
}

/** Cheap structural checks shared by the judges; errors name the request and the field. */
export function checkJudgeRequest(request: JudgeRequest, index: number): void {
  const where = `judge request ${index}`;
  if (!request || typeof request !== 'object') throw invalidArgument(`${where} must be an object {profile, query, products}.`);
  if (typeof request.query !== 'string') throw invalidArgument(`${where}.query must be a string.`);
  if (!request.profile || typeof request.profile !== 'object') throw invalidArgument(`${where}.profile is missing; sample one from a profile pool.`);
  if (!Array.isArray(request.products)) throw invalidArgument(`${where}.products must be an array of products.`);
  for (let i = 0; i < request.products.length; i++) {
    const p = request.products[i];
    if (!p || typeof p.id !== 'string' || typeof p.title !== 'string') {
      throw invalidArgument(`${where}.products[${i}] needs string "id" and "title".`);
    }
  }
  if (request.relevance !== undefined) {
    if (!Array.isArray(request.relevance) || request.relevance.length !== request.products.length) {
      throw invalidArgument(`${where}.relevance must have one gain per product (${request.products.length}), got ${Array.isArray(request.relevance) ? request.relevance.length : typeof request.relevance}.`);
    }
    for (let i = 0; i < request.relevance.length; i++) {
      const r = request.relevance[i];
      if (typeof r !== 'number' || !Number.isFinite(r)) throw invalidArgument(`${where}.relevance[${i}] must be a finite number, got ${String(r)}.`);
    }
  }
}
