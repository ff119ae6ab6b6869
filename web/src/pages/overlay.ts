// Overlay: metrics of several checks on one time axis, to see whether
// events line up (event correlation). History from /api/v1/series, or
// Live from one stream per check.
import { h, replace, errorBox } from "../dom";
import { api, numeric, type Check, type Series } from "../api";
import { OverlayChart, palette, type OverlaySeries } from "../chart";
import { loadChecks } from "../checks";
import { LiveStream, type LiveState } from "../live";
import { rangeBar } from "../rangebar";
import { href, setParams, type Route } from "../router";
import { iso, parseTime, rangeFrom, rangeParams, refresh, stepFor, type Range } from "../time";

const LIVE_WINDOW = 300;
const MAX_SERIES = 8;

interface Pick {
  checkID: string;
  metric: string;
}

const keyOf = (p: Pick) => `${p.checkID}|${p.metric}`;

function parsePicks(params: URLSearchParams): Pick[] {
  const out: Pick[] = [];
  for (const s of params.getAll("s")) {
    const i = s.indexOf("|");
    if (i > 0 && i < s.length - 1) out.push({ checkID: s.slice(0, i), metric: s.slice(i + 1) });
  }
  return out.slice(0, MAX_SERIES);
}

export function overlayPage(root: HTMLElement, route: Route) {
  let picks = parsePicks(route.params);
  let range = rangeFrom(route.params);
  let names = new Map<string, string>(); // check id → name
  let byName = new Map<string, Check>();
  const streams = new Map<string, LiveStream>();
  let liveOn = false;
  let gen = 0;
  let ac: AbortController | null = null;

  const chart = new OverlayChart("overlay", (a, b) => {
    if (b - a < 10) {
      const mid = (a + b) / 2;
      a = mid - 5;
      b = mid + 5;
    }
    setRange({ from: a, to: b }, true);
  });
  const bar = rangeBar(range, (r) => setRange(r.preset ? refresh(r) : r, true));

  // Picker.
  const checkIn = h("input", {
    list: "overlay-checks",
    id: "overlay-check",
    placeholder: "check name",
    "aria-label": "check",
    autocomplete: "off",
    onchange: () => pickCheck(),
  });
  const datalist = h("datalist", { id: "overlay-checks" });
  const metricSel = h("select", { id: "overlay-metric", "aria-label": "metric", disabled: true }, h("option", { value: "" }, "metric"));
  // A submit button: the form's submit (click or Enter) adds, once.
  const addBtn = h("button", { id: "overlay-add", type: "submit", class: "primary small", disabled: true }, "Add");
  const pickErr = h("span", { class: "field-error", id: "overlay-error" });
  const chips = h("div", { class: "chips picks", id: "overlay-picks" });
  const liveBtn = h(
    "button",
    { class: "live-toggle", id: "live", "aria-pressed": "false", onclick: () => (liveOn ? stopLive(true) : startLive()) },
    h("span", { class: "dot" }),
    "Live",
  );
  const liveInfo = h("div", { class: "live-status live-note", hidden: true });
  const chartWrap = h("div", { class: "charts" }, chart.el);

  root.append(
    h("h2", null, "Overlay"),
    h("p", { class: "muted" }, "Put metrics of several checks on one time axis to see whether events line up. Metrics with the same name share a y axis."),
    h(
      "form",
      { class: "toolbar picker", onsubmit: (e: Event) => (e.preventDefault(), add()) },
      checkIn,
      datalist,
      metricSel,
      addBtn,
      pickErr,
    ),
    chips,
    h("div", { class: "toolbar sticky" }, bar.el, h("span", { class: "spacer" }), liveBtn),
    liveInfo,
    chartWrap,
  );

  async function pickCheck() {
    pickErr.textContent = "";
    const c = byName.get(checkIn.value.trim());
    metricSel.disabled = true;
    addBtn.disabled = true;
    replace(metricSel, h("option", { value: "" }, "metric"));
    if (!c) {
      if (checkIn.value.trim()) pickErr.textContent = "no check of that name";
      return;
    }
    replace(metricSel, h("option", { value: "" }, "loading metrics…"));
    try {
      const r = await api<{ check: Check; metrics?: string[] }>(`/api/v1/checks/${encodeURIComponent(c.id)}`);
      const text = new Set((r.check.last?.metrics || []).filter((m) => m.type === "string").map((m) => m.name));
      const ms = (r.metrics || []).filter((m) => !text.has(m)).sort();
      if (!ms.length) {
        replace(metricSel, h("option", { value: "" }, "no numeric metrics"));
        return;
      }
      replace(
        metricSel,
        ms.map((m) => h("option", { value: m }, m)),
      );
      metricSel.disabled = false;
      addBtn.disabled = false;
    } catch (e) {
      replace(metricSel, h("option", { value: "" }, "metric"));
      pickErr.textContent = (e as Error).message;
    }
  }

  function add() {
    const c = byName.get(checkIn.value.trim());
    if (!c || !metricSel.value) return;
    const p = { checkID: c.id, metric: metricSel.value };
    if (picks.some((x) => keyOf(x) === keyOf(p))) {
      pickErr.textContent = "already shown";
      return;
    }
    if (picks.length >= MAX_SERIES) {
      pickErr.textContent = `at most ${MAX_SERIES} series`;
      return;
    }
    pickErr.textContent = "";
    picks.push(p);
    changed();
  }

  function remove(p: Pick) {
    picks = picks.filter((x) => keyOf(x) !== keyOf(p));
    changed();
  }

  function changed() {
    saveParams(false);
    renderChips();
    if (liveOn) {
      stopLive(false);
      startLive();
    } else load();
  }

  function saveParams(push: boolean) {
    const p = new URLSearchParams();
    for (const x of picks) p.append("s", keyOf(x));
    rangeParams(range, p);
    setParams(p, push);
  }

  function label(p: Pick) {
    return `${names.get(p.checkID) || p.checkID.slice(0, 8)} / ${p.metric}`;
  }

  function renderChips() {
    replace(
      chips,
      picks.length
        ? picks.map((p, i) =>
            h(
              "span",
              { class: "pick", style: `border-color:${palette[i % palette.length]}` },
              h("span", { class: "swatch", style: `background:${palette[i % palette.length]}` }),
              h("a", { href: href(["check", p.checkID]) }, label(p)),
              h("button", { class: "x", title: "remove", "aria-label": "remove " + label(p), onclick: () => remove(p) }, "×"),
            ),
          )
        : h("span", { class: "muted" }, "Nothing picked yet: choose a check and a metric above."),
    );
  }

  function defs(): OverlaySeries[] {
    return picks.map((p) => ({ key: keyOf(p), label: label(p), unit: "", scale: p.metric }));
  }

  function setRange(r: Range, push: boolean) {
    range = r;
    bar.set(r);
    saveParams(push);
    load();
  }

  async function load() {
    if (liveOn) return;
    const my = ++gen;
    if (ac) ac.abort();
    ac = new AbortController();
    if (!picks.length) {
      chart.message("Pick two or more check + metric pairs to compare them.");
      return;
    }
    chart.message("Loading…", "loading");
    const step = stepFor(range, chartWrap.getBoundingClientRect().width || 1000);
    try {
      const series = await Promise.all(
        picks.map((p) =>
          api<Series>(
            `/api/v1/series?${new URLSearchParams({ check: p.checkID, metric: p.metric, from: iso(range.from), to: iso(range.to), step: `${step}s` })}`,
            { signal: ac!.signal },
          ),
        ),
      );
      if (my !== gen) return;
      chart.setHistory(defs(), series, range.from, range.to, step);
    } catch (e) {
      if (my !== gen || (e as Error).name === "AbortError") return;
      replace(chart.el.querySelector(".chart-body")!, errorBox(e, load));
    }
  }

  function startLive() {
    if (!picks.length) return;
    gen++;
    if (ac) ac.abort();
    liveOn = true;
    bar.disable(true);
    liveBtn.setAttribute("aria-pressed", "true");
    liveBtn.classList.add("on");
    chart.startLive(defs());
    const states = new Map<string, LiveState>();
    const show = () => {
      const failed = [...states.entries()].filter(([, s]) => s === "failed");
      liveInfo.hidden = false;
      liveInfo.className = "live-status " + (failed.length ? "error" : "live-note");
      const open = [...states.values()].filter((s) => s === "open").length;
      liveInfo.textContent = failed.length
        ? liveInfo.textContent || "a stream failed"
        : `Live: ${open} of ${states.size} check clones streaming every second (not stored, not alerted on).`;
    };
    for (const checkID of new Set(picks.map((p) => p.checkID))) {
      const mine = picks.filter((p) => p.checkID === checkID);
      states.set(checkID, "connecting");
      streams.set(
        checkID,
        new LiveStream(checkID, "1s", {
          result: (r) => {
            const t = parseTime(r.time);
            for (const p of mine) {
              const m = (r.metrics || []).find((x) => x.name === p.metric);
              if (m) chart.append(keyOf(p), t, numeric(m), LIVE_WINDOW);
            }
          },
          state: (s: LiveState, detail?: string) => {
            if (!liveOn) return;
            states.set(checkID, s);
            if (s === "failed") liveInfo.textContent = `Live stream of ${names.get(checkID) || checkID} failed: ${detail}`;
            show();
          },
        }),
      );
    }
  }

  function stopLive(reload: boolean) {
    liveOn = false;
    for (const s of streams.values()) s.close();
    streams.clear();
    liveBtn.setAttribute("aria-pressed", "false");
    liveBtn.classList.remove("on");
    liveInfo.hidden = true;
    bar.disable(false);
    if (reload) {
      if (range.preset) range = refresh(range);
      bar.set(range);
      load();
    }
  }

  (async () => {
    renderChips();
    chart.message("Loading checks…", "loading");
    try {
      const list = await loadChecks();
      names = new Map(list.checks.map((c) => [c.id, c.name]));
      byName = new Map(list.checks.map((c) => [c.name, c]));
      replace(
        datalist,
        list.checks.map((c) => h("option", { value: c.name })),
      );
      renderChips();
      load();
    } catch (e) {
      replace(chart.el.querySelector(".chart-body")!, errorBox(e));
    }
  })();

  return () => {
    gen++;
    if (ac) ac.abort();
    liveOn = false;
    for (const s of streams.values()) s.close();
    streams.clear();
    chart.destroy();
  };
}
