// uPlot charts: one metric's history (raw or a rollup with its min–max
// band, zoom by drag-select, live appends), the overlay of several
// metrics on one time axis, and the status strip.
import uPlot from "uplot";
import { h, replace } from "./dom";
import type { Series, StatusPoint } from "./api";
import { duration, local, parseTime } from "./time";

export const palette = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];

// The registry lets the browser tests (and a curious user in the console)
// read what each chart really holds: window.recon.charts().
export interface ChartInfo {
  id: string;
  kind: "history" | "overlay";
  mode: "history" | "live";
  resolution: string;
  series: string[];
  points: number; // x values holding at least one non-null value
  from: number | null;
  to: number | null;
}

const registry = new Set<{ info(): ChartInfo }>();
(window as unknown as { recon: object }).recon = {
  charts: (): ChartInfo[] => [...registry].map((c) => c.info()),
};

function countPoints(data: uPlot.AlignedData): number {
  let n = 0;
  const xs = data[0];
  for (let i = 0; i < xs.length; i++) {
    for (let s = 1; s < data.length; s++) {
      const v = (data[s] as (number | null | undefined)[])[i];
      if (v !== null && v !== undefined) {
        n++;
        break;
      }
    }
  }
  return n;
}

// withGaps inserts a null where consecutive points are much further apart
// than usual (the check was not running), so the line breaks there.
function withGaps(xs: number[], cols: (number | null)[][], expected: number): [number[], (number | null)[][]] {
  if (xs.length < 3) return [xs, cols];
  let gap = expected;
  if (!gap) {
    const d: number[] = [];
    for (let i = 1; i < xs.length; i++) d.push(xs[i] - xs[i - 1]);
    d.sort((a, b) => a - b);
    gap = d[Math.floor(d.length / 2)];
  }
  const limit = gap * 3;
  if (!(limit > 0)) return [xs, cols];
  const ox: number[] = [];
  const oc: (number | null)[][] = cols.map(() => []);
  for (let i = 0; i < xs.length; i++) {
    if (i > 0 && xs[i] - xs[i - 1] > limit) {
      ox.push((xs[i] + xs[i - 1]) / 2);
      oc.forEach((c) => c.push(null));
    }
    ox.push(xs[i]);
    cols.forEach((c, j) => oc[j].push(c[i]));
  }
  return [ox, oc];
}

function fmtValue(v: number | null, unit = ""): string {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  let s: string;
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) s = v.toExponential(3);
  else s = String(Math.round(v * 1000) / 1000);
  return unit ? `${s} ${unit}` : s;
}

// liveRange shows at least the last minute, so the first live points
// appear at the right edge and the axis does not zoom to milliseconds.
function liveRange(xs: number[]): uPlot.Range.MinMax {
  if (!xs.length) {
    const t = Date.now() / 1000;
    return [t - 60, t];
  }
  const hi = xs[xs.length - 1];
  return [Math.min(xs[0], hi - 60), hi + 0.5];
}

const axisFont = "11px system-ui, sans-serif";

function baseAxes(): uPlot.Axis[] {
  const grid = { stroke: "#e5e7eb", width: 1 };
  return [
    { stroke: "#4b5563", grid, ticks: grid, font: axisFont },
    { stroke: "#4b5563", grid, ticks: grid, font: axisFont, size: 60 },
  ];
}

function chartWidth(el: HTMLElement): number {
  return Math.max(300, Math.floor(el.getBoundingClientRect().width || 800));
}

function observeWidth(el: HTMLElement, get: () => uPlot | null, height: number): ResizeObserver {
  const ro = new ResizeObserver(() => {
    const u = get();
    const w = chartWidth(el);
    if (u && Math.abs(u.width - w) > 2) u.setSize({ width: w, height });
  });
  ro.observe(el);
  return ro;
}

export interface HistoryOptions {
  id: string;
  title: string;
  unit?: string;
  color?: string;
  syncKey?: string;
  height?: number;
  // onZoom gets the selected bounds (Unix seconds).
  onZoom?: (from: number, to: number) => void;
}

// HistoryChart draws one metric of one check.
export class HistoryChart {
  readonly el: HTMLElement;
  private head: HTMLElement;
  private meta: HTMLElement;
  private body: HTMLElement;
  private u: uPlot | null = null;
  private mode: "history" | "live" = "history";
  private resolution = "";
  private range: [number, number] | null = null;
  private liveX: number[] = [];
  private liveY: (number | null)[] = [];
  private ro: ResizeObserver;
  private height: number;
  private shape = ""; // what the current plot draws, to update it in place

  constructor(private o: HistoryOptions) {
    this.height = o.height || 200;
    this.meta = h("span", { class: "chart-meta" });
    this.head = h("div", { class: "chart-head" }, h("span", { class: "chart-title" }, o.title, o.unit ? ` (${o.unit})` : ""), this.meta);
    this.body = h("div", { class: "chart-body" }, h("p", { class: "loading" }, "Loading…"));
    this.el = h("section", { class: "chart", dataset: { metric: o.title } }, this.head, this.body);
    this.ro = observeWidth(this.body, () => this.u, this.height);
    registry.add(this);
  }

  info(): ChartInfo {
    const data = this.u ? this.u.data : null;
    return {
      id: this.o.id,
      kind: "history",
      mode: this.mode,
      resolution: this.resolution,
      series: [this.o.title],
      points: data ? countPoints(data) : 0,
      from: this.u ? (this.u.scales.x.min ?? null) : null,
      to: this.u ? (this.u.scales.x.max ?? null) : null,
    };
  }

  message(text: string, cls = "empty"): void {
    this.destroyPlot();
    replace(this.body, h("p", { class: cls }, text));
  }

  private destroyPlot(): void {
    if (this.u) this.u.destroy();
    this.u = null;
    this.shape = "";
  }

  private makePlot(series: uPlot.Series[], data: uPlot.AlignedData, bands?: uPlot.Band[]): void {
    this.destroyPlot();
    replace(this.body);
    const fixed = this.mode === "history" && this.range;
    const opts: uPlot.Options = {
      width: chartWidth(this.body),
      height: this.height,
      legend: { show: true, live: true },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        sync: this.o.syncKey ? { key: this.o.syncKey } : undefined,
      },
      scales: {
        x: fixed
          ? { time: true, auto: false, range: () => [this.range![0], this.range![1]] }
          : { time: true, auto: false, range: (u) => liveRange(u.data[0] as number[]) },
      },
      series,
      bands,
      axes: baseAxes(),
      hooks: {
        setSelect: [
          (u) => {
            const sel = u.select;
            if (sel.width > 3 && this.o.onZoom && this.mode === "history") {
              const a = u.posToVal(sel.left, "x");
              const b = u.posToVal(sel.left + sel.width, "x");
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              this.o.onZoom(a, b);
            }
          },
        ],
      },
    };
    this.u = new uPlot(opts, data, this.body);
    this.el.dataset.points = String(countPoints(data));
  }

  // setHistory draws a series returned by /api/v1/series over [from, to].
  setHistory(s: Series, from: number, to: number, step: number): void {
    this.mode = "history";
    this.range = [from, to];
    this.resolution = s.resolution;
    const rollup = s.resolution !== "raw";
    const xs = s.points.map((p) => parseTime(p.t));
    const v = s.points.map((p) => p.v);
    const cols: (number | null)[][] = rollup ? [v, s.points.map((p) => p.min), s.points.map((p) => p.max)] : [v];
    const bucket = { raw: 0, "5m": 300, "1h": 3600, "1d": 86400 }[s.resolution] || 0;
    const [gx, gc] = withGaps(xs, cols, bucket);
    const color = this.o.color || palette[0];
    const unit = this.o.unit || "";
    const series: uPlot.Series[] = [
      {},
      {
        label: rollup ? `${this.o.title} avg` : this.o.title,
        stroke: color,
        width: 1.5,
        points: { show: s.points.length < 120 },
        value: (_u, val) => fmtValue(val, unit),
      },
    ];
    let bands: uPlot.Band[] | undefined;
    if (rollup) {
      series.push(
        { label: "min", stroke: color + "66", width: 1, dash: [4, 3], value: (_u, val) => fmtValue(val, unit) },
        { label: "max", stroke: color + "66", width: 1, dash: [4, 3], value: (_u, val) => fmtValue(val, unit) },
      );
      bands = [{ series: [3, 2], fill: color + "1f" }];
    }
    const resLabel = rollup ? `${s.resolution} rollup (avg, min–max band)` : "raw";
    replace(
      this.meta,
      h("span", { class: "res", title: "picked by the server from the step" }, resLabel),
      ` · ${s.points.length} points · step ${duration(step)}`,
    );
    if (s.points.length === 0) {
      this.message("No numeric data in this range (a text metric, or nothing stored yet).");
      return;
    }
    const data = [gx, ...gc] as uPlot.AlignedData;
    const shape = `history:${s.resolution}`;
    if (this.u && this.shape === shape) {
      // A refresh of the same kind of data: keep the plot (and the
      // user's cursor), swap the data; the x range follows this.range.
      this.u.setData(data);
      this.el.dataset.points = String(countPoints(data));
      return;
    }
    this.shape = shape;
    this.makePlot(series, data, bands);
  }

  // startLive empties the chart; append then adds stream results.
  startLive(): void {
    this.mode = "live";
    this.resolution = "live";
    this.liveX = [];
    this.liveY = [];
    replace(this.meta, h("span", { class: "res live" }, "live"), " · waiting for the first result…");
    this.message("Waiting for the first result from the stream…", "loading");
  }

  // append adds one live point, keeping the last `windowSec` seconds.
  append(t: number, v: number | null, windowSec: number): void {
    if (this.mode !== "live") return;
    this.liveX.push(t);
    this.liveY.push(v);
    while (this.liveX.length > 1 && this.liveX[0] < t - windowSec) {
      this.liveX.shift();
      this.liveY.shift();
    }
    const data: uPlot.AlignedData = [this.liveX.slice(), this.liveY.slice()];
    const n = countPoints(data);
    replace(this.meta, h("span", { class: "res live" }, "live"), ` · ${n} points · last ${fmtValue(v, this.o.unit)} at ${local(t)}`);
    if (!this.u) {
      const unit = this.o.unit || "";
      this.makePlot(
        [
          {},
          {
            label: this.o.title,
            stroke: this.o.color || palette[0],
            width: 1.5,
            points: { show: true, size: 4 },
            value: (_u, val) => fmtValue(val, unit),
          },
        ],
        data,
      );
    } else {
      this.u.setData(data);
      this.el.dataset.points = String(n);
    }
  }

  destroy(): void {
    this.ro.disconnect();
    this.destroyPlot();
    registry.delete(this);
  }
}

// OverlaySeries is one check+metric of the overlay chart.
export interface OverlaySeries {
  key: string; // checkID|metric
  label: string;
  unit: string;
  scale: string; // series sharing a scale share a y axis
}

// OverlayChart puts several series, maybe with different units, on one
// time axis: one y axis per scale, alternating left and right.
export class OverlayChart {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private meta: HTMLElement;
  private u: uPlot | null = null;
  private ro: ResizeObserver;
  private mode: "history" | "live" = "history";
  private resolution = "";
  private defs: OverlaySeries[] = [];
  // Live data by series key, aligned on render.
  private live = new Map<string, [number[], (number | null)[]]>();
  private height = 360;

  constructor(
    private id: string,
    private onZoom?: (from: number, to: number) => void,
  ) {
    this.meta = h("span", { class: "chart-meta" });
    this.body = h("div", { class: "chart-body" });
    this.el = h(
      "section",
      { class: "chart overlay-chart" },
      h("div", { class: "chart-head" }, h("span", { class: "chart-title" }, "Overlay"), this.meta),
      this.body,
    );
    this.ro = observeWidth(this.body, () => this.u, this.height);
    registry.add(this);
  }

  info(): ChartInfo {
    const data = this.u ? this.u.data : null;
    return {
      id: this.id,
      kind: "overlay",
      mode: this.mode,
      resolution: this.resolution,
      series: this.defs.map((d) => d.label),
      points: data ? countPoints(data) : 0,
      from: this.u ? (this.u.scales.x.min ?? null) : null,
      to: this.u ? (this.u.scales.x.max ?? null) : null,
    };
  }

  message(text: string, cls = "empty"): void {
    if (this.u) this.u.destroy();
    this.u = null;
    replace(this.body, h("p", { class: cls }, text));
  }

  private build(data: uPlot.AlignedData, range: [number, number] | null): void {
    if (this.u) this.u.destroy();
    replace(this.body);
    const scales: uPlot.Scales = {
      x: range
        ? { time: true, auto: false, range: () => range }
        : { time: true, auto: false, range: (u) => liveRange(u.data[0] as number[]) },
    };
    const axes: uPlot.Axis[] = [baseAxes()[0]];
    const seen: string[] = [];
    const series: uPlot.Series[] = [{}];
    this.defs.forEach((d, i) => {
      const color = palette[i % palette.length];
      if (!seen.includes(d.scale)) {
        const n = seen.length;
        seen.push(d.scale);
        scales[d.scale] = { auto: true };
        axes.push({
          scale: d.scale,
          side: n % 2 === 0 ? 3 : 1,
          stroke: color,
          grid: { show: n === 0, stroke: "#e5e7eb", width: 1 },
          ticks: { stroke: "#e5e7eb", width: 1 },
          font: axisFont,
          size: 60,
          label: d.scale,
          labelFont: axisFont,
          labelSize: 16,
        });
      }
      series.push({
        label: d.label,
        scale: d.scale,
        stroke: color,
        width: 1.5,
        spanGaps: true, // nulls come from aligning series of different checks
        points: { show: this.mode === "live" },
        value: (_u, v) => fmtValue(v, d.unit),
      });
    });
    const opts: uPlot.Options = {
      width: chartWidth(this.body),
      height: this.height,
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales,
      axes,
      series,
      hooks: {
        setSelect: [
          (u) => {
            const sel = u.select;
            if (sel.width > 3 && this.onZoom && this.mode === "history") {
              const a = u.posToVal(sel.left, "x");
              const b = u.posToVal(sel.left + sel.width, "x");
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              this.onZoom(a, b);
            }
          },
        ],
      },
    };
    this.u = new uPlot(opts, data, this.body);
    this.el.dataset.points = String(countPoints(data));
  }

  // setHistory draws one /api/v1/series answer per definition.
  setHistory(defs: OverlaySeries[], series: Series[], from: number, to: number, step: number): void {
    this.mode = "history";
    this.defs = defs;
    const res = [...new Set(series.map((s) => s.resolution))];
    this.resolution = res.join(",");
    const tables = series.map((s) => [s.points.map((p) => parseTime(p.t)), s.points.map((p) => p.v)] as uPlot.AlignedData);
    const total = series.reduce((n, s) => n + s.points.length, 0);
    replace(
      this.meta,
      h("span", { class: "res", title: "picked by the server from the step" }, res.map((r) => (r === "raw" ? "raw" : r + " rollup (avg)")).join(", ")),
      ` · ${total} points · step ${duration(step)}`,
    );
    if (total === 0) {
      this.message("No numeric data for these metrics in this range.");
      return;
    }
    this.build(uPlot.join(tables), [from, to]);
  }

  startLive(defs: OverlaySeries[]): void {
    this.mode = "live";
    this.resolution = "live";
    this.defs = defs;
    this.live = new Map(defs.map((d) => [d.key, [[], []]]));
    replace(this.meta, h("span", { class: "res live" }, "live"), " · waiting for the first results…");
    this.message("Waiting for the first results from the streams…", "loading");
  }

  append(key: string, t: number, v: number | null, windowSec: number): void {
    const col = this.live.get(key);
    if (this.mode !== "live" || !col) return;
    col[0].push(t);
    col[1].push(v);
    while (col[0].length > 1 && col[0][0] < t - windowSec) {
      col[0].shift();
      col[1].shift();
    }
    const tables = this.defs.map((d) => {
      const c = this.live.get(d.key)!;
      return [c[0].slice(), c[1].slice()] as uPlot.AlignedData;
    });
    const data = uPlot.join(tables);
    const n = countPoints(data);
    replace(this.meta, h("span", { class: "res live" }, "live"), ` · ${n} points`);
    if (!this.u) this.build(data, null);
    else {
      this.u.setData(data);
      this.el.dataset.points = String(n);
    }
  }

  destroy(): void {
    this.ro.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
    registry.delete(this);
  }
}

// statusStrip draws status history over [from, to] as coloured segments;
// rows come newest first from /api/v1/history.
export function statusStrip(rows: StatusPoint[], from: number, to: number): HTMLElement {
  const strip = h("div", { class: "strip", role: "img", "aria-label": "status history" });
  const span = to - from;
  if (span <= 0) return strip;
  const asc = rows.slice().reverse();
  for (let i = 0; i < asc.length; i++) {
    const start = Math.max(from, parseTime(asc[i].t));
    let j = i;
    while (j + 1 < asc.length && asc[j + 1].status === asc[i].status) j++;
    const end = j + 1 < asc.length ? parseTime(asc[j + 1].t) : Math.min(to, Date.now() / 1000);
    const left = ((start - from) / span) * 100;
    const width = Math.max(0.15, ((end - start) / span) * 100);
    strip.appendChild(
      h("div", {
        class: "seg st-" + asc[i].status,
        style: `left:${left.toFixed(3)}%;width:${width.toFixed(3)}%`,
        title: `${asc[i].status} from ${local(start)} for ${duration(end - start)}: ${asc[i].output}`,
      }),
    );
    i = j;
  }
  return strip;
}
