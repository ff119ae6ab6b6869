// Checks overview: one request for the whole list, filtered and sorted in
// the browser, drawn as a window-scrolled virtual list so 5,000 checks
// cost a few dozen DOM rows.
import { h, replace, errorBox, loading } from "../dom";
import { statusOrder, type Check } from "../api";
import { loadChecks, statusOf } from "../checks";
import { href, setParams, type Route } from "../router";
import { ago, local, parseTime } from "../time";

const ROW = 30; // px, fixed so the list can be virtual
const OVERSCAN = 10;
const REFRESH_MS = 10000;
const STATUSES = ["CRITICAL", "UNKNOWN", "WARNING", "OK", "PENDING"];

interface Row {
  c: Check;
  status: string;
  hay: string; // lower-case text the filter searches
  last: number; // Unix seconds of the last result, 0 when none
}

type SortKey = "status" | "name" | "last";

export function overviewPage(root: HTMLElement, route: Route) {
  const params = route.params;
  let query = params.get("q") || "";
  let statusFilter = new Set((params.get("status") || "").split(",").filter((s) => STATUSES.includes(s)));
  let sortKey: SortKey = (["status", "name", "last"].includes(params.get("sort") || "") ? params.get("sort") : "status") as SortKey;
  let rows: Row[] = [];
  let shown: Row[] = [];
  let fetched = 0;
  let timer = 0;
  let raf = 0;

  const filterInput = h("input", {
    type: "search",
    id: "filter",
    placeholder: "Filter by name, target, type, tag or output…",
    value: query,
    "aria-label": "filter checks",
    oninput: () => {
      query = filterInput.value;
      saveParams();
      apply();
    },
  });
  const chips = h("div", { class: "chips", role: "group", "aria-label": "status filter" });
  const sortSel = h(
    "select",
    {
      "aria-label": "sort",
      onchange: () => {
        sortKey = sortSel.value as SortKey;
        saveParams();
        apply();
      },
    },
    h("option", { value: "status" }, "worst status first"),
    h("option", { value: "name" }, "name"),
    h("option", { value: "last" }, "last run (oldest first)"),
  );
  sortSel.value = sortKey;
  const updated = h("span", { class: "muted" });
  const banner = h("div");
  const count = h("span", { class: "count" });
  const spacer = h("div", { class: "vspacer" });
  const list = h("div", { class: "vlist", id: "checks", role: "table", "aria-label": "checks" }, spacer);
  const empty = h("p", { class: "empty", hidden: true });
  const body = h("div", null, loading("Loading checks…"));

  root.append(
    h(
      "div",
      { class: "toolbar" },
      filterInput,
      chips,
      h("label", { class: "muted" }, "Sort ", sortSel),
      h("span", { class: "spacer" }),
      count,
      updated,
      h("button", { class: "small", onclick: () => refresh(true) }, "Refresh"),
    ),
    banner,
    body,
  );

  function saveParams() {
    const p = new URLSearchParams();
    if (query) p.set("q", query);
    if (statusFilter.size) p.set("status", [...statusFilter].join(","));
    if (sortKey !== "status") p.set("sort", sortKey);
    setParams(p);
  }

  function renderChips() {
    const counts: Record<string, number> = {};
    for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
    replace(
      chips,
      h(
        "button",
        {
          class: "chip" + (statusFilter.size === 0 ? " on" : ""),
          onclick: () => {
            statusFilter = new Set();
            saveParams();
            apply();
          },
        },
        `All ${rows.length}`,
      ),
      STATUSES.map((s) =>
        h(
          "button",
          {
            class: `chip st-${s}` + (statusFilter.has(s) ? " on" : ""),
            "aria-pressed": statusFilter.has(s) ? "true" : "false",
            onclick: () => {
              if (statusFilter.has(s)) statusFilter.delete(s);
              else statusFilter.add(s);
              saveParams();
              apply();
            },
          },
          `${s} ${counts[s] || 0}`,
        ),
      ),
    );
  }

  function apply() {
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    shown = rows.filter((r) => (statusFilter.size === 0 || statusFilter.has(r.status)) && terms.every((t) => r.hay.includes(t)));
    const byName = (a: Row, b: Row) => (a.c.name < b.c.name ? -1 : a.c.name > b.c.name ? 1 : 0);
    if (sortKey === "status") shown.sort((a, b) => statusOrder[a.status] - statusOrder[b.status] || byName(a, b));
    else if (sortKey === "last") shown.sort((a, b) => a.last - b.last || byName(a, b));
    else shown.sort(byName);
    renderChips();
    count.textContent = shown.length === rows.length ? `${rows.length} checks` : `${shown.length} of ${rows.length} checks`;
    spacer.style.height = `${shown.length * ROW}px`;
    if (fetched && !list.isConnected) replace(body, header(), list, empty);
    empty.hidden = shown.length > 0;
    empty.textContent = rows.length === 0 ? "No checks are configured." : "No check matches the filter.";
    draw();
  }

  function header() {
    return h(
      "div",
      { class: "vhead row", role: "row" },
      ["Status", "Check", "Type", "Target", "Last output", "Last run", "Period"].map((t) => h("span", { role: "columnheader" }, t)),
    );
  }

  // draw renders the rows in view.
  function draw() {
    raf = 0;
    for (const el of Array.from(list.querySelectorAll(".row"))) el.remove();
    if (!shown.length) return;
    const top = list.getBoundingClientRect().top; // relative to the viewport
    const first = Math.max(0, Math.floor(-top / ROW) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((window.innerHeight - top) / ROW) + OVERSCAN);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.appendChild(rowEl(shown[i], i));
    list.appendChild(frag);
  }

  function rowEl(r: Row, i: number) {
    const c = r.c;
    const link = href(["check", c.id]);
    return h(
      "div",
      {
        class: "row",
        role: "row",
        style: `top:${i * ROW}px`,
        dataset: { id: c.id, name: c.name },
        onclick: (e: MouseEvent) => {
          if ((e.target as HTMLElement).closest("a")) return;
          location.hash = link;
        },
      },
      h("span", null, badge(r.status)),
      h("span", { class: "name" }, h("a", { href: link, title: c.name }, c.name)),
      h("span", { class: "muted" }, c.type),
      h("span", { class: "muted ellipsis", title: c.target || "" }, c.target || ""),
      h("span", { class: "ellipsis", title: c.last ? c.last.output : "" }, c.last ? c.last.output : "not run yet"),
      h("span", { class: "muted", title: r.last ? local(r.last) : "" }, r.last ? ago(r.last) : "–"),
      h("span", { class: "muted" }, c.period),
    );
  }

  const onScroll = () => {
    if (!raf) raf = requestAnimationFrame(draw);
  };
  window.addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onScroll);

  async function refresh(force = false) {
    try {
      const list = await loadChecks(force ? 0 : 5000);
      fetched = list.fetched;
      rows = list.checks.map((c) => ({
        c,
        status: statusOf(c),
        last: c.last ? parseTime(c.last.time) : 0,
        hay: [c.name, c.target || "", c.type, c.last ? c.last.output : "", ...Object.entries(c.tags || {}).map(([k, v]) => `${k}=${v}`)]
          .join("\n")
          .toLowerCase(),
      }));
      replace(banner);
      updated.textContent = "updated " + local(fetched / 1000).slice(11);
      apply();
    } catch (e) {
      if (!fetched) replace(body, errorBox(e, () => refresh(true)));
      else replace(banner, errorBox(e, () => refresh(true)));
    }
  }

  refresh();
  timer = window.setInterval(() => {
    if (document.visibilityState === "visible") refresh(true);
  }, REFRESH_MS);

  return () => {
    clearInterval(timer);
    if (raf) cancelAnimationFrame(raf);
    window.removeEventListener("scroll", onScroll);
    window.removeEventListener("resize", onScroll);
  };
}

export function badge(status: string) {
  return h("span", { class: `badge st-${status}` }, status);
}
