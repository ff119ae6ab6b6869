// The checks list, fetched once and shared by the pages that need it
// (overview, overlay picker); at most one request in flight.
import { api, type Check } from "./api";

export interface ChecksList {
  checks: Check[];
  agent: string;
  fetched: number;
}

let cache: ChecksList | null = null;
let inflight: Promise<ChecksList> | null = null;

export function loadChecks(maxAgeMs = 10000): Promise<ChecksList> {
  if (cache && Date.now() - cache.fetched < maxAgeMs) return Promise.resolve(cache);
  if (inflight) return inflight;
  inflight = api<{ checks: Check[]; agent: string }>("/api/v1/checks")
    .then((r) => {
      cache = { checks: r.checks || [], agent: r.agent || "", fetched: Date.now() };
      return cache;
    })
    .finally(() => {
      inflight = null;
    });
  return inflight;
}

export function statusOf(c: Check): string {
  return c.last ? c.last.status : "PENDING";
}
