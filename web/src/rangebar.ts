// The range picker shared by the check and overlay pages: presets, a
// custom from–to, and "back" after a zoom.
import { h } from "./dom";
import { canGoBack } from "./router";
import { describe, fromInput, presets, toInput, type Range } from "./time";

export interface RangeBar {
  el: HTMLElement;
  set(r: Range): void;
  disable(on: boolean): void;
}

export function rangeBar(initial: Range, onChange: (r: Range) => void): RangeBar {
  let range = initial;
  const buttons = presets.map((p) =>
    h(
      "button",
      {
        class: "chip",
        dataset: { range: p.key },
        onclick: () => onChange({ preset: p.key, from: 0, to: 0 }),
      },
      p.label,
    ),
  );
  const fromIn = h("input", { type: "datetime-local", "aria-label": "from" });
  const toIn = h("input", { type: "datetime-local", "aria-label": "to" });
  const err = h("span", { class: "field-error" });
  const custom = h(
    "form",
    {
      class: "custom-range",
      hidden: true,
      onsubmit: (e: Event) => {
        e.preventDefault();
        const a = fromInput(fromIn.value);
        const b = fromInput(toIn.value);
        if (a === null || b === null || a >= b) {
          err.textContent = "from must be before to";
          return;
        }
        err.textContent = "";
        onChange({ from: a, to: b });
      },
    },
    fromIn,
    "→",
    toIn,
    h("button", { type: "submit", class: "small" }, "Apply"),
    err,
  );
  const customBtn = h(
    "button",
    {
      class: "chip",
      dataset: { range: "custom" },
      onclick: () => {
        custom.hidden = !custom.hidden;
      },
    },
    "custom…",
  );
  const label = h("span", { class: "range-label muted" });
  const back = h("button", { class: "small", title: "previous range (browser Back)", onclick: () => history.back() }, "← back");
  const el = h("div", { class: "rangebar" }, h("span", { class: "muted" }, "Range"), buttons, customBtn, custom, back, label);

  function set(r: Range) {
    range = r;
    for (const b of buttons) b.classList.toggle("on", b.dataset.range === r.preset);
    customBtn.classList.toggle("on", !r.preset);
    fromIn.value = toInput(r.from);
    toIn.value = toInput(r.to);
    label.textContent = describe(r) + (r.preset ? "" : " · drag on a chart to zoom in");
    back.hidden = !canGoBack();
  }
  set(range);
  return {
    el,
    set,
    disable(on: boolean) {
      for (const b of [...buttons, customBtn, back]) b.disabled = on;
      custom.hidden = on || custom.hidden;
    },
  };
}
