// A tiny element builder: h("div", {class: "x", onclick: f}, "text", child).
// Text is always set as text, never parsed as HTML, so check output and
// labels from the API cannot inject markup.

type Attrs = Record<string, unknown>;
export type Child = Node | string | number | null | undefined | false | Child[];

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v as EventListener);
      } else if (k === "class") {
        el.className = String(v);
      } else if (k === "style") {
        // CSSOM, not the attribute: allowed under the strict CSP.
        el.style.cssText = String(v);
      } else if (k === "dataset") {
        Object.assign(el.dataset, v as Record<string, string>);
      } else if (k === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(v);
      } else if (k === "checked" && "checked" in el) {
        (el as HTMLInputElement).checked = Boolean(v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

export function loading(what = "Loading…"): HTMLElement {
  return h("p", { class: "loading" }, what);
}

// errorBox shows an API or network error; retry, when given, adds a button.
export function errorBox(err: unknown, retry?: () => void): HTMLElement {
  const msg = err instanceof Error ? err.message : String(err);
  const details = (err as { details?: string[] }).details;
  return h(
    "div",
    { class: "error", role: "alert" },
    h("strong", null, "Error: "),
    msg,
    details && details.length ? h("ul", null, details.map((d) => h("li", null, d))) : null,
    retry ? h("button", { class: "small", onclick: retry }, "Retry") : null,
  );
}
