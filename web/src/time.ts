// Time ranges, steps and formatting. Times inside the UI are Unix seconds
// (what uPlot uses); the API gets RFC 3339.

export const presets: { key: string; label: string; seconds: number }[] = [
  { key: "1h", label: "1h", seconds: 3600 },
  { key: "6h", label: "6h", seconds: 6 * 3600 },
  { key: "24h", label: "24h", seconds: 24 * 3600 },
  { key: "7d", label: "7d", seconds: 7 * 86400 },
  { key: "30d", label: "30d", seconds: 30 * 86400 },
];

// A Range is a preset relative to now, or fixed bounds.
export interface Range {
  preset?: string;
  from: number;
  to: number;
}

export function now(): number {
  return Date.now() / 1000;
}

// rangeFrom reads ?range=1h or ?from=&to= (Unix seconds); default 1h.
export function rangeFrom(params: URLSearchParams): Range {
  const from = Number(params.get("from"));
  const to = Number(params.get("to"));
  if (params.has("from") && params.has("to") && isFinite(from) && isFinite(to) && from < to) {
    return { from, to };
  }
  const key = params.get("range") || "1h";
  const p = presets.find((x) => x.key === key) || presets[0];
  const t = now();
  return { preset: p.key, from: t - p.seconds, to: t };
}

export function rangeParams(r: Range, params: URLSearchParams): void {
  params.delete("range");
  params.delete("from");
  params.delete("to");
  if (r.preset) {
    params.set("range", r.preset);
  } else {
    params.set("from", String(Math.floor(r.from)));
    params.set("to", String(Math.ceil(r.to)));
  }
}

// refresh recomputes a preset's bounds against the current time.
export function refresh(r: Range): Range {
  if (!r.preset) return r;
  const p = presets.find((x) => x.key === r.preset)!;
  const t = now();
  return { preset: p.key, from: t - p.seconds, to: t };
}

// stepFor asks for about one point per pixel: the server picks raw data
// below a 5-minute step and a rollup above it.
export function stepFor(r: Range, pixels: number): number {
  return Math.max(1, Math.floor((r.to - r.from) / Math.max(100, pixels)));
}

export function iso(sec: number): string {
  return new Date(sec * 1000).toISOString();
}

export function parseTime(s: string): number {
  return Date.parse(s) / 1000;
}

export function duration(sec: number): string {
  sec = Math.round(sec);
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60 ? (sec % 60) + "s" : ""}`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h${Math.floor((sec % 3600) / 60) ? Math.floor((sec % 3600) / 60) + "m" : ""}`;
  return `${Math.floor(sec / 86400)}d${Math.floor((sec % 86400) / 3600) ? Math.floor((sec % 86400) / 3600) + "h" : ""}`;
}

export function ago(sec: number): string {
  const d = now() - sec;
  if (d < -1) return "in " + duration(-d);
  if (d < 1) return "just now";
  return duration(d) + " ago";
}

const pad = (n: number) => String(n).padStart(2, "0");

// local formats a time as "2006-01-02 15:04:05" in the browser's zone.
export function local(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// For <input type="datetime-local">.
export function toInput(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromInput(s: string): number | null {
  if (!s) return null;
  const t = new Date(s).getTime();
  return isFinite(t) ? t / 1000 : null;
}

export function describe(r: Range): string {
  if (r.preset) return `last ${r.preset}`;
  return `${local(r.from)} → ${local(r.to)} (${duration(r.to - r.from)})`;
}
