// Check page: details and last result, a history chart per metric from
// /api/v1/series (any range, zoom by drag-select, raw or rollup picked by
// the server from the step), the status history, and Live: the temporal
// stream of a clone of the check at 1 s.
import { h, replace, errorBox, loading } from "../dom";
import { api, numeric, ApiError, type Check, type Result, type Series, type StatusPoint } from "../api";
import { HistoryChart, palette, statusStrip } from "../chart";
import { LiveStream, type LiveState } from "../live";
import { rangeBar } from "../rangebar";
import { href, setParams, type Route } from "../router";
import { ago, iso, local, parseTime, rangeFrom, rangeParams, refresh, stepFor, type Range } from "../time";
import { badge } from "./overview";

const LIVE_WINDOW = 300; // seconds of live points kept on screen
const HISTORY_LIMIT = 5000;
const REFRESH_MS = 30000;

export function checkPage(root: HTMLElement, route: Route) {
  const id = route.path[1] || "";
  const params = route.params;
  let range = rangeFrom(params);
  let check: Check | null = null;
  let metrics: string[] = [];
  const charts = new Map<string, HistoryChart>();
  let live: LiveStream | null = null;
  let timer = 0;
  let gen = 0; // drops answers to superseded loads
  const aborts = new Set<AbortController>();

  const headEl = h("div", { class: "check-head" }, loading("Loading check…"));
  const bar = rangeBar(range, (r) => {
    setRange(r.preset ? refresh(r) : r, true);
  });
  const liveBtn = h(
    "button",
    { class: "live-toggle", id: "live", "aria-pressed": "false", onclick: () => toggleLive(), title: "stream a clone of this check every second" },
    h("span", { class: "dot" }),
    "Live",
  );
  const liveInfo = h("div", { class: "live-info", hidden: true });
  const stripEl = h("div", { class: "strip-wrap" });
  const chartsEl = h("div", { class: "charts", id: "charts" });
  const changesEl = h("div", { class: "changes" });
  root.append(
    headEl,
    h("div", { class: "toolbar sticky" }, bar.el, h("span", { class: "spacer" }), liveBtn),
    liveInfo,
    h("h3", null, "Status history"),
    stripEl,
    h("h3", null, "Metrics"),
    chartsEl,
    h("h3", null, "Status changes"),
    changesEl,
  );

  function units(): Record<string, string> {
    const u: Record<string, string> = {};
    for (const m of check?.last?.metrics || []) u[m.name] = m.unit;
    return u;
  }

  function chartFor(name: string): HistoryChart {
    let c = charts.get(name);
    if (!c) {
      c = new HistoryChart({
        id: `${id}|${name}`,
        title: name,
        unit: units()[name] || "",
        color: palette[charts.size % palette.length],
        syncKey: "check-" + id,
        onZoom: (a, b) => {
          if (b - a < 10) {
            const mid = (a + b) / 2;
            a = mid - 5;
            b = mid + 5;
          }
          setRange({ from: a, to: b }, true);
        },
      });
      charts.set(name, c);
      chartsEl.querySelector(":scope > p")?.remove(); // "no metrics" message
      chartsEl.appendChild(c.el);
    }
    return c;
  }

  function renderHead(c: Check, ran?: Result) {
    const last = ran || c.last;
    const runBtn = h("button", { class: "small", id: "run-now", onclick: () => runNow(runBtn) }, "Run now");
    replace(
      headEl,
      h("div", { class: "crumbs" }, h("a", { href: href([]) }, "Checks"), " / ", c.name),
      h("div", { class: "title-row" }, badge(last ? last.status : "PENDING"), h("h2", null, c.name), h("span", { class: "spacer" }), c.type === "passive" ? null : runBtn),
      h(
        "dl",
        { class: "facts" },
        fact("type", c.type),
        c.target ? fact("target", c.target) : null,
        fact("period", c.period),
        fact("timeout", c.timeout),
        fact("attempts", String(c.max_attempts)),
        fact("runs", `${c.runs}${c.late ? ` (${c.late} late)` : ""}`),
        c.next_run ? fact("next run", ago(parseTime(c.next_run))) : null,
        c.tags && Object.keys(c.tags).length ? fact("tags", Object.entries(c.tags).map(([k, v]) => `${k}=${v}`).join(" ")) : null,
        fact("source", c.source),
      ),
      last
        ? h(
            "div",
            { class: "last" },
            h("div", { class: "muted" }, `${ran ? "Run now" : "Last result"}: ${local(parseTime(last.time))} (${ago(parseTime(last.time))}), ${last.state_type}`, last.attempt ? ` attempt ${last.attempt}` : "", `, took ${last.duration_ms} ms`),
            h("pre", { class: "output" }, last.output),
            last.long_output ? h("details", null, h("summary", null, "long output"), h("pre", { class: "output" }, last.long_output)) : null,
          )
        : h("p", { class: "muted" }, "Not run yet."),
    );
  }

  async function runNow(btn: HTMLButtonElement) {
    btn.disabled = true;
    btn.textContent = "Running…";
    try {
      const r = await api<Result>(`/api/v1/checks/${encodeURIComponent(id)}/run`, { method: "POST" });
      if (check) renderHead(check, r);
    } catch (e) {
      headEl.appendChild(errorBox(e));
      btn.disabled = false;
      btn.textContent = "Run now";
    }
  }

  function setRange(r: Range, push: boolean) {
    range = r;
    const p = new URLSearchParams();
    rangeParams(r, p);
    setParams(p, push);
    bar.set(r);
    loadHistory();
  }

  function abortAll() {
    for (const a of aborts) a.abort();
    aborts.clear();
  }

  async function loadHistory() {
    if (live) return;
    const my = ++gen;
    abortAll();
    const ac = new AbortController();
    aborts.add(ac);
    const width = chartsEl.getBoundingClientRect().width || 1000;
    const step = stepFor(range, width);
    const q = (extra: Record<string, string>) =>
      new URLSearchParams({ check: id, from: iso(range.from), to: iso(range.to), ...extra }).toString();

    // Status history.
    if (!stripEl.firstChild) replace(stripEl, loading());
    api<{ history: StatusPoint[] }>(`/api/v1/history?${q({ limit: String(HISTORY_LIMIT) })}`, { signal: ac.signal })
      .then((r) => {
        if (my !== gen) return;
        renderStatus(r.history || []);
      })
      .catch((e) => {
        if (my !== gen || e.name === "AbortError") return;
        replace(stripEl, errorBox(e, () => loadHistory()));
        replace(changesEl);
      });

    // One request per numeric metric, a few at a time.
    const textNames = new Set((check?.last?.metrics || []).filter((m) => m.type === "string").map((m) => m.name));
    const names = metrics.filter((m) => !textNames.has(m));
    if (names.length === 0) {
      replace(chartsEl, h("p", { class: "empty" }, metrics.length ? "This check only has text metrics." : "No metrics stored for this check (its plugin reports no performance data, or no trend store is configured)."));
      charts.clear();
      return;
    }
    for (const n of names) chartFor(n);
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++];
        const c = chartFor(name);
        try {
          const s = await api<Series>(`/api/v1/series?${q({ metric: name, step: `${step}s` })}`, { signal: ac.signal });
          if (my !== gen) return;
          c.setHistory(s, range.from, range.to, step);
        } catch (e) {
          if (my !== gen || (e as Error).name === "AbortError") return;
          c.message("Error: " + (e as Error).message, "error");
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    aborts.delete(ac);
  }

  function renderStatus(rows: StatusPoint[]) {
    replace(
      stripEl,
      statusStrip(rows, range.from, range.to),
      h(
        "div",
        { class: "strip-axis muted" },
        h("span", null, local(range.from)),
        h("span", null, rows.length >= HISTORY_LIMIT ? `newest ${HISTORY_LIMIT} results shown` : `${rows.length} results`),
        h("span", null, local(range.to)),
      ),
    );
    // Status changes, newest first.
    const changes: StatusPoint[] = [];
    for (let i = rows.length - 1; i >= 0; i--) {
      if (i === rows.length - 1 || rows[i].status !== rows[i + 1].status) changes.push(rows[i]);
    }
    changes.reverse();
    if (!changes.length) {
      replace(changesEl, h("p", { class: "empty" }, "No results stored in this range."));
      return;
    }
    replace(
      changesEl,
      h(
        "table",
        { class: "table" },
        h("thead", null, h("tr", null, h("th", null, "Since"), h("th", null, "Status"), h("th", null, "State"), h("th", null, "Output"))),
        h(
          "tbody",
          null,
          changes.slice(0, 50).map((p) =>
            h(
              "tr",
              null,
              h("td", { class: "nowrap", title: ago(parseTime(p.t)) }, local(parseTime(p.t))),
              h("td", null, badge(p.status)),
              h("td", { class: "muted" }, p.state_type, p.attempt ? ` ${p.attempt}` : ""),
              h("td", { class: "ellipsis", title: p.output }, p.output),
            ),
          ),
        ),
      ),
    );
  }

  function setLiveState(s: LiveState, detail?: string) {
    liveBtn.dataset.state = s;
    const text: Record<LiveState, string> = {
      connecting: "Connecting to the stream…",
      open: "Live: a clone of this check runs every second for this page; its results are not stored or alerted on.",
      reconnecting: detail || "Reconnecting…",
      failed: "Live stream failed: " + (detail || "unknown error"),
      closed: "",
    };
    const cls = s === "failed" ? "error" : "live-note";
    if (s === "closed") {
      liveInfo.hidden = true;
      return;
    }
    liveInfo.hidden = false;
    const note = liveInfo.querySelector(".live-status");
    if (note) {
      note.className = "live-status " + cls;
      note.textContent = text[s];
    } else replace(liveInfo, h("div", { class: "live-status " + cls }, text[s]), h("div", { class: "live-last" }));
    if (s === "failed") stopLive(false);
  }

  function onLiveResult(r: Result) {
    const t = parseTime(r.time);
    const last = liveInfo.querySelector(".live-last");
    if (last) replace(last, badge(r.status), ` ${local(t)} · ${r.duration_ms} ms · `, h("span", { class: "output-inline" }, r.output));
    for (const m of r.metrics || []) {
      if (m.type === "string") continue;
      const c = charts.get(m.name) || (metrics.push(m.name), chartFor(m.name));
      c.append(t, numeric(m), LIVE_WINDOW);
    }
  }

  function toggleLive() {
    if (live) stopLive(true);
    else startLive();
  }

  function startLive() {
    gen++;
    abortAll();
    clearInterval(timer);
    bar.disable(true);
    liveBtn.setAttribute("aria-pressed", "true");
    liveBtn.classList.add("on");
    if (!charts.size) replace(chartsEl, h("p", { class: "empty" }, "No numeric metrics yet: charts appear when the stream's results carry performance data."));
    for (const c of charts.values()) c.startLive();
    live = new LiveStream(id, "1s", { result: onLiveResult, state: setLiveState });
  }

  function stopLive(reload: boolean) {
    const l = live;
    live = null;
    if (l) l.close();
    liveBtn.setAttribute("aria-pressed", "false");
    liveBtn.classList.remove("on");
    bar.disable(false);
    if (reload) {
      liveInfo.hidden = true;
      if (range.preset) range = refresh(range);
      bar.set(range);
      loadHistory();
      startTimer();
    }
  }

  function startTimer() {
    clearInterval(timer);
    timer = window.setInterval(() => {
      if (live || !range.preset || document.visibilityState !== "visible") return;
      range = refresh(range);
      bar.set(range);
      loadHistory();
    }, REFRESH_MS);
  }

  async function load() {
    try {
      const r = await api<{ check: Check; metrics?: string[] }>(`/api/v1/checks/${encodeURIComponent(id)}`);
      check = r.check;
      metrics = (r.metrics || []).slice().sort();
      document.title = `${check.name} · recon`;
      renderHead(check);
      if (range.preset) range = refresh(range);
      bar.set(range);
      loadHistory();
      startTimer();
    } catch (e) {
      replace(headEl, h("div", { class: "crumbs" }, h("a", { href: href([]) }, "Checks")), errorBox(e, load));
      if (e instanceof ApiError && e.status === 404) {
        replace(chartsEl);
        replace(stripEl);
      }
    }
  }
  load();

  return () => {
    gen++;
    abortAll();
    clearInterval(timer);
    if (live) live.close();
    live = null;
    for (const c of charts.values()) c.destroy();
    charts.clear();
  };
}

function fact(k: string, v: string) {
  return [h("dt", null, k), h("dd", null, v)];
}
