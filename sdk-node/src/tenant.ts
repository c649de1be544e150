/**
 * The management routes of one tenant (`/v1/tenants/{id}/…`). These take a personal
 * access token (`pat_…`), not a project's secret key: create one in the dashboard or
 * with `POST /v1/tenants/{id}/personal-access-tokens` while signed in.
 */
import { Http, seg, type Ok, type Query } from './http.js';
import type { AuditEntry, AuditPage, Granularity, Project, Tenant, TenantUsage } from './types.js';

/** A time range of usage: whole UTC hours or days, at most 93 days. */
export interface UsageRange {
  /** Start (a Date or RFC 3339 in UTC); rounded down to a bucket. */
  from: Date | string;
  /** End, exclusive; rounded up to a bucket. */
  to: Date | string;
  granularity?: Granularity;
}

export function rangeQuery(range: UsageRange): { from: string; to: string; granularity?: Granularity } {
  const iso = (d: Date | string) => (typeof d === 'string' ? d : d.toISOString().replace(/\.\d{3}Z$/, 'Z'));
  const q: { from: string; to: string; granularity?: Granularity } = { from: iso(range.from), to: iso(range.to) };
  if (range.granularity !== undefined) q.granularity = range.granularity;
  return q;
}

/** The tenant's audit log, newest first: iterate it, or read `.page()`s. */
export class AuditLog implements AsyncIterable<AuditEntry> {
  readonly #http: Http;
  readonly #tenantId: string;
  readonly #pageSize: number;

  constructor(http: Http, tenantId: string, pageSize: number) {
    this.#http = http;
    this.#tenantId = tenantId;
    this.#pageSize = pageSize;
  }

  /** Entries older than `before` (the previous page's `nextCursor`). */
  page(before?: number): Promise<AuditPage> {
    const query: Query<'listAuditLog'> = { limit: this.#pageSize };
    if (before !== undefined) query.before = before;
    return this.#http.request<Ok<'listAuditLog'>>('GET', `/v1/tenants/${seg(this.#tenantId)}/audit-log`, { query });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<AuditEntry, void, undefined> {
    let before: number | undefined;
    for (;;) {
      const page = await this.page(before);
      yield* page.data;
      if (page.nextCursor === undefined || page.nextCursor === null) return;
      before = page.nextCursor;
    }
  }
}

export class TenantClient {
  readonly #http: Http;
  readonly id: string;

  constructor(http: Http, tenantId: string) {
    this.#http = http;
    this.id = tenantId;
  }

  /** The tenant (name, plan, your role). */
  get(): Promise<Tenant> {
    return this.#http.request<Ok<'getTenant'>>('GET', `/v1/tenants/${seg(this.id)}`);
  }

  /** The tenant's projects. */
  async projects(): Promise<Project[]> {
    const list = await this.#http.request<Ok<'listProjects'>>('GET', `/v1/tenants/${seg(this.id)}/projects`);
    return list.data;
  }

  /** Every project's usage and their sums (any member). */
  usage(range: UsageRange): Promise<TenantUsage> {
    return this.#http.request<Ok<'getTenantUsage'>>('GET', `/v1/tenants/${seg(this.id)}/usage`, {
      query: rangeQuery(range),
    });
  }

  /** The audit log (admins), newest first: `for await (const entry of tenant.auditLog())`. */
  auditLog(options: { pageSize?: number } = {}): AuditLog {
    return new AuditLog(this.#http, this.id, options.pageSize ?? 50);
  }
}
