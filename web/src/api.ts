// The agent's HTTP API (agent/api/openapi.json) as the UI uses it, with
// bearer-token handling: a 401 asks the user for the token, keeps it in
// localStorage and retries.
import { h } from "./dom";

export type Status = "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";

export interface Metric {
  name: string;
  value: number | string;
  type: string; // float | int | uint | string
  unit: string;
  warn: string;
  crit: string;
  min: number | null;
  max: number | null;
}

export interface Result {
  check: string;
  id: string;
  target: string;
  time: string;
  duration_ms: number;
  status: Status;
  state_type: string;
  output: string;
  long_output: string;
  metrics: Metric[];
  check_type?: string;
  agent?: string;
  attempt?: number;
  tags?: Record<string, string>;
}

export interface Check {
  id: string;
  name: string;
  type: string;
  target?: string;
  period: string;
  timeout: string;
  max_attempts: number;
  tags?: Record<string, string>;
  source: string;
  running: boolean;
  next_run?: string;
  runs: number;
  late: number;
  last: Result | null;
}

export interface Point {
  t: string;
  v: number;
  n: number;
  min: number;
  max: number;
  sum: number;
}

export interface Series {
  check_id: string;
  metric: string;
  resolution: "raw" | "5m" | "1h" | "1d";
  points: Point[];
}

export interface StatusPoint {
  t: string;
  status: Status;
  state_type: string;
  attempt: number;
  duration_ns: number;
  output: string;
  long_output?: string;
}

export interface Alert {
  key: string;
  rule: string;
  state: string;
  since: string;
  severity?: string;
  labels: Record<string, string>;
  value: number;
  status: string;
  output: string;
  summary: string;
  flapping: boolean;
  flap_percent: number;
  silenced: boolean;
  inhibited: boolean;
  notified: boolean;
}

export interface Matcher {
  name: string;
  value: string;
  regex?: boolean;
}

export interface Silence {
  id: string;
  matchers: Matcher[];
  starts_at: string;
  ends_at: string;
  created_by: string;
  comment: string;
  created_at: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const TOKEN_KEY = "recon.token";

export function token(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(t: string): void {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives for this page only.
  }
  tokenListeners.forEach((f) => f());
}

const tokenListeners: (() => void)[] = [];
export function onTokenChange(f: () => void): void {
  tokenListeners.push(f);
}

// One dialog at a time, shared by all requests that got a 401.
let asking: Promise<string | null> | null = null;

function askToken(rejected: boolean): Promise<string | null> {
  if (asking) return asking;
  asking = new Promise<string | null>((resolve) => {
    const input = h("input", {
      type: "password",
      name: "token",
      autocomplete: "current-password",
      placeholder: "bearer token",
      "aria-label": "API token",
    });
    const done = (v: string | null) => {
      overlay.remove();
      asking = null;
      resolve(v);
    };
    const form = h(
      "form",
      {
        class: "dialog",
        onsubmit: (e: Event) => {
          e.preventDefault();
          if (input.value.trim()) done(input.value.trim());
        },
      },
      h("h2", null, "API token required"),
      h(
        "p",
        null,
        rejected
          ? "The token was rejected. Enter the agent's token (agent.token in its configuration)."
          : "This agent requires a bearer token (agent.token in its configuration). It is kept in this browser's local storage.",
      ),
      input,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "submit", class: "primary" }, "Use token"),
        h("button", { type: "button", onclick: () => done(null) }, "Cancel"),
      ),
    );
    const overlay = h("div", { class: "overlay", id: "token-dialog" }, form);
    document.body.appendChild(overlay);
    input.focus();
  });
  return asking;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`;
  let details: string[] = [];
  try {
    const body = await res.json();
    if (body && typeof body.error === "string") msg = body.error;
    if (body && Array.isArray(body.details)) details = body.details.map(String);
  } catch {
    // Not JSON (a proxy's page): the status line says enough.
  }
  return new ApiError(res.status, msg, details);
}

// api calls the API; path starts with /api/v1. A JSON body is sent as JSON.
export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  let rejected = false;
  for (;;) {
    const headers: Record<string, string> = { Accept: "application/json" };
    const tok = token();
    if (tok) headers["Authorization"] = "Bearer " + tok;
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    let res: Response;
    try {
      res = await fetch(path, { method: init.method || "GET", headers, body, signal: init.signal });
    } catch (e) {
      if ((e as Error).name === "AbortError") throw e;
      throw new ApiError(0, `cannot reach the agent (${(e as Error).message})`);
    }
    if (res.status === 401) {
      const t = await askToken(rejected || tok !== "");
      if (t === null) throw await errorFrom(res);
      setToken(t);
      rejected = true;
      continue;
    }
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}

// streamURL is an EventSource URL; EventSource cannot send headers, so the
// token goes in the query string.
export function streamURL(checkID: string, period: string): string {
  const q = new URLSearchParams({ period });
  const tok = token();
  if (tok) q.set("access_token", tok);
  return `/api/v1/checks/${encodeURIComponent(checkID)}/stream?${q}`;
}

// streamError reads why a stream URL was refused (EventSource hides it).
export async function streamError(checkID: string, period: string): Promise<ApiError> {
  try {
    const res = await fetch(streamURL(checkID, period), { headers: { Accept: "application/json" } });
    if (res.ok) {
      res.body?.cancel();
      return new ApiError(0, "the stream closed");
    }
    return await errorFrom(res);
  } catch (e) {
    return new ApiError(0, `cannot reach the agent (${(e as Error).message})`);
  }
}

// Metric values come as numbers, or "NaN"/"+Inf"/"-Inf", or text.
export function numeric(m: Metric): number | null {
  if (m.type === "string") return null;
  if (typeof m.value === "number") return m.value;
  return null; // NaN and infinities are not drawn
}

export const statusOrder: Record<string, number> = { CRITICAL: 0, UNKNOWN: 1, WARNING: 2, OK: 3, PENDING: 4 };
