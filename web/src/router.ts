// Hash routing: "#/check/ID?range=1h". A page renders into the main
// element and returns a cleanup function (closing streams and timers).

export type Cleanup = () => void;
export type Page = (root: HTMLElement, route: Route) => Cleanup | void;

export interface Route {
  path: string[]; // "#/check/abc" → ["check", "abc"]
  params: URLSearchParams;
}

export function current(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [p, q] = splitOnce(raw, "?");
  return {
    path: p.split("/").filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(q),
  };
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

export function href(path: string[], params?: URLSearchParams | Record<string, string>): string {
  const p = "#/" + path.map(encodeURIComponent).join("/");
  const q = params instanceof URLSearchParams ? params.toString() : new URLSearchParams(params || {}).toString();
  return q ? `${p}?${q}` : p;
}

let rendered = "";
let pushed = 0; // history entries this page pushed and Back has not undone

// canGoBack reports whether Back returns to a state of this UI (and not to
// whatever page came before it).
export function canGoBack(): boolean {
  return pushed > 0;
}

// setParams updates the address without re-rendering: push makes a new
// history entry (Back returns to the previous state, re-rendered).
export function setParams(params: URLSearchParams, push = false): void {
  const r = current();
  const next = href(r.path, params);
  if (next === location.hash) return;
  rendered = next;
  if (push) {
    history.pushState(null, "", next);
    pushed++;
  }
  else history.replaceState(null, "", next);
}

export function start(routes: Record<string, Page>, root: HTMLElement, onRoute: (r: Route) => void): void {
  let cleanup: Cleanup | void;
  const render = () => {
    if (location.hash === rendered && cleanup !== undefined) return;
    rendered = location.hash;
    if (cleanup) cleanup();
    cleanup = undefined;
    const r = current();
    const page = routes[r.path[0] || ""] || routes["*"];
    root.replaceChildren();
    onRoute(r);
    cleanup = page(root, r) || (() => {});
    window.scrollTo(0, 0);
  };
  window.addEventListener("hashchange", render);
  window.addEventListener("popstate", () => {
    pushed = Math.max(0, pushed - 1);
    render();
  });
  render();
}
