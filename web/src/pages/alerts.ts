// Alerts (from the alerter sink) and silences: list, create with
// matchers and an expiry, expire. Without an alerter the API answers 503,
// shown as such.
import { h, replace, errorBox, loading } from "../dom";
import { api, ApiError, type Alert, type Matcher, type Silence } from "../api";
import { href, type Route } from "../router";
import { ago, duration, fromInput, local, now, parseTime, toInput } from "../time";

const REFRESH_MS = 5000;

interface Stats {
  Instances: number;
  Firing: number;
  Pending: number;
  Flapping: number;
  Evaluations: number;
  Errors: number;
  Suppressed: number;
  Delivered: number;
  DeliveryFailures: number;
  Outbox: number;
  LastError: string;
}

// failure renders a 503 (no alerter, or not started yet) plainly and
// other errors as errors.
function failure(e: unknown, retry: () => void): HTMLElement {
  if (e instanceof ApiError && e.status === 503) {
    const none = /no alerter/i.test(e.message);
    return h(
      "div",
      { class: "notice", id: none ? "no-alerter" : "alerter-unavailable", role: "status" },
      h("strong", null, none ? "No alerter configured." : "The alerter is not ready."),
      " The agent answered: ",
      h("q", null, e.message),
      none
        ? h("p", { class: "muted" }, "Alerts and silences come from an alerter sink: add ", h("code", null, '[[sink]] type = "alerter"'), " to the agent's configuration and reload.")
        : h("button", { class: "small", onclick: retry }, "Retry"),
    );
  }
  return errorBox(e, retry);
}

export function alertsPage(root: HTMLElement, _route: Route) {
  const statsEl = h("div", { class: "stats" });
  const body = h("div", null, loading("Loading alerts…"));
  root.append(h("div", { class: "title-row" }, h("h2", null, "Alerts"), h("span", { class: "spacer" }), statsEl), body);
  let timer = 0;
  let loaded = false;

  async function load() {
    try {
      const r = await api<{ alerts: Alert[]; stats?: Stats }>("/api/v1/alerts");
      loaded = true;
      render(r.alerts || [], r.stats);
    } catch (e) {
      replace(statsEl);
      if (!loaded || e instanceof ApiError) replace(body, failure(e, load));
    }
  }

  function render(alerts: Alert[], st?: Stats) {
    if (st) {
      replace(
        statsEl,
        h("span", { class: "stat st-CRITICAL" }, `${st.Firing} firing`),
        h("span", { class: "stat st-WARNING" }, `${st.Pending} pending`),
        h("span", { class: "stat" }, `${st.Flapping} flapping`),
        h("span", { class: "stat muted" }, `${st.Evaluations} evaluations · ${st.Delivered} notifications sent · ${st.DeliveryFailures} failed · ${st.Outbox} queued`),
        st.LastError ? h("span", { class: "stat error-text", title: st.LastError }, "last error: " + st.LastError) : null,
      );
    }
    if (!alerts.length) {
      replace(body, h("p", { class: "empty", id: "no-alerts" }, "No alert is pending or firing."));
      return;
    }
    const order: Record<string, number> = { firing: 0, flapping: 1, pending: 2 };
    alerts.sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || (a.since < b.since ? 1 : -1));
    replace(
      body,
      h(
        "table",
        { class: "table", id: "alerts" },
        h(
          "thead",
          null,
          h("tr", null, ["State", "Check", "Rule", "Severity", "Since", "Value", "Summary", "", ""].map((t) => h("th", null, t))),
        ),
        h(
          "tbody",
          null,
          alerts.map((a) =>
            h(
              "tr",
              { dataset: { key: a.key } },
              h("td", null, h("span", { class: `badge al-${a.state}` }, a.state)),
              h("td", null, a.labels.check_id ? h("a", { href: href(["check", a.labels.check_id]) }, a.labels.check || a.labels.check_id) : a.labels.check || ""),
              h("td", null, a.rule),
              h("td", null, a.severity || ""),
              h("td", { class: "nowrap", title: local(parseTime(a.since)) }, ago(parseTime(a.since))),
              h("td", null, isFinite(a.value) ? String(Math.round(a.value * 1000) / 1000) : ""),
              h("td", { class: "ellipsis", title: a.output }, a.summary || a.output),
              h(
                "td",
                { class: "flags" },
                a.silenced ? h("span", { class: "flag" }, "silenced") : null,
                a.inhibited ? h("span", { class: "flag" }, "inhibited") : null,
                a.flapping ? h("span", { class: "flag" }, `flapping ${Math.round(a.flap_percent)}%`) : null,
                a.notified ? h("span", { class: "flag" }, "notified") : null,
              ),
              h(
                "td",
                null,
                h(
                  "a",
                  { class: "button small", href: href(["silences"], { check: a.labels.check || "", rule: a.rule }) },
                  "Silence…",
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  load();
  timer = window.setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

function matcherText(m: Matcher): string {
  return `${m.name}${m.regex ? "=~" : "="}"${m.value}"`;
}

function silenceState(s: Silence): "active" | "pending" | "expired" {
  const t = now();
  if (parseTime(s.ends_at) <= t) return "expired";
  if (parseTime(s.starts_at) > t) return "pending";
  return "active";
}

const LABELS = ["check", "rule", "target", "severity", "metric", "host", "check_id"];
const DURATIONS: [string, number][] = [
  ["1 hour", 3600],
  ["4 hours", 4 * 3600],
  ["1 day", 86400],
  ["7 days", 7 * 86400],
];

export function silencesPage(root: HTMLElement, route: Route) {
  const listEl = h("div", null, loading("Loading silences…"));
  const formMsg = h("div", { id: "silence-message" });
  const matchersEl = h("div", { class: "matchers" });
  const labelList = h("datalist", { id: "silence-labels" }, LABELS.map((l) => h("option", { value: l })));

  function matcherRow(m: Matcher) {
    const row: HTMLElement = h(
      "div",
      { class: "matcher" },
      h("input", { class: "m-name", list: "silence-labels", placeholder: "label", value: m.name, "aria-label": "label name", required: true }),
      h("input", { class: "m-value", placeholder: "value", value: m.value, "aria-label": "label value", required: true }),
      h("label", { class: "muted" }, h("input", { type: "checkbox", class: "m-regex", checked: !!m.regex }), " regex"),
      h(
        "button",
        {
          type: "button",
          class: "x",
          title: "remove matcher",
          onclick: () => {
            if (matchersEl.children.length > 1) row.remove();
          },
        },
        "×",
      ),
    );
    return row;
  }

  const pre: Matcher[] = [];
  for (const l of LABELS) {
    const v = route.params.get(l);
    if (v) pre.push({ name: l, value: v });
  }
  if (!pre.length) pre.push({ name: "check", value: "" });
  pre.forEach((m) => matchersEl.appendChild(matcherRow(m)));

  const startsIn = h("input", { type: "datetime-local", id: "silence-starts", "aria-label": "starts", value: toInput(now()) });
  const durSel = h(
    "select",
    { id: "silence-duration", "aria-label": "duration", onchange: () => (endsIn.hidden = durSel.value !== "custom") },
    DURATIONS.map(([l, s]) => h("option", { value: String(s) }, l)),
    h("option", { value: "custom" }, "until…"),
  );
  const endsIn = h("input", { type: "datetime-local", id: "silence-ends", "aria-label": "ends", hidden: true, value: toInput(now() + 3600) });
  let user = "";
  try {
    user = localStorage.getItem("recon.user") || "";
  } catch {
    /* storage disabled */
  }
  const byIn = h("input", { id: "silence-by", placeholder: "your name", value: user, "aria-label": "created by", required: true });
  const commentIn = h("input", { id: "silence-comment", placeholder: "why (maintenance, ticket…)", "aria-label": "comment", class: "wide" });
  const submit = h("button", { type: "submit", class: "primary", id: "silence-create" }, "Create silence");

  const form = h(
    "form",
    { class: "card silence-form", id: "silence-form", onsubmit: (e: Event) => (e.preventDefault(), create()) },
    h("h3", null, "New silence"),
    h("p", { class: "muted" }, "Alerts whose labels match every matcher send no notification until the silence expires. Regex matchers are anchored."),
    matchersEl,
    labelList,
    h("button", { type: "button", class: "small", onclick: () => matchersEl.appendChild(matcherRow({ name: "", value: "" })) }, "+ matcher"),
    h(
      "div",
      { class: "form-row" },
      h("label", null, "Starts ", startsIn),
      h("label", null, "For ", durSel),
      endsIn,
      h("label", null, "Created by ", byIn),
      h("label", { class: "grow" }, "Comment ", commentIn),
    ),
    h("div", { class: "form-row" }, submit, formMsg),
  );

  root.append(h("h2", null, "Silences"), form, listEl);

  async function create() {
    const matchers: Matcher[] = Array.from(matchersEl.querySelectorAll(".matcher")).map((row) => ({
      name: (row.querySelector(".m-name") as HTMLInputElement).value.trim(),
      value: (row.querySelector(".m-value") as HTMLInputElement).value,
      regex: (row.querySelector(".m-regex") as HTMLInputElement).checked,
    }));
    const starts = fromInput(startsIn.value) ?? now();
    const ends = durSel.value === "custom" ? fromInput(endsIn.value) : Math.max(starts, now()) + Number(durSel.value);
    if (ends === null || ends <= starts) {
      replace(formMsg, errorBox(new Error("the silence must end after it starts")));
      return;
    }
    try {
      localStorage.setItem("recon.user", byIn.value.trim());
    } catch {
      /* storage disabled */
    }
    submit.disabled = true;
    try {
      const s = await api<Silence>("/api/v1/silences", {
        method: "POST",
        body: {
          matchers,
          starts_at: new Date(starts * 1000).toISOString(),
          ends_at: new Date(ends * 1000).toISOString(),
          created_by: byIn.value.trim(),
          comment: commentIn.value,
        },
      });
      replace(formMsg, h("span", { class: "ok-text", id: "silence-created" }, `Silence ${s.id} created, until ${local(parseTime(s.ends_at))}.`));
      load();
    } catch (e) {
      replace(formMsg, failure(e, create));
    } finally {
      submit.disabled = false;
    }
  }

  async function expire(s: Silence, btn: HTMLButtonElement) {
    if (btn.dataset.confirm !== "1") {
      btn.dataset.confirm = "1";
      btn.textContent = "Confirm expire";
      btn.classList.add("danger");
      return;
    }
    btn.disabled = true;
    try {
      await api<void>(`/api/v1/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      load();
    } catch (e) {
      listEl.prepend(errorBox(e));
      btn.disabled = false;
    }
  }

  async function load() {
    try {
      const r = await api<{ silences: Silence[] }>("/api/v1/silences");
      render(r.silences || []);
    } catch (e) {
      const f = failure(e, load);
      replace(listEl, f);
      if (e instanceof ApiError && e.status === 503) form.hidden = true;
    }
  }

  function render(list: Silence[]) {
    form.hidden = false;
    if (!list.length) {
      replace(listEl, h("p", { class: "empty", id: "no-silences" }, "No silences."));
      return;
    }
    const rows = list.map((s) => {
      const st = silenceState(s);
      const btn: HTMLButtonElement = h("button", { class: "small", onclick: () => expire(s, btn) }, "Expire");
      const ends = parseTime(s.ends_at);
      return h(
        "tr",
        { class: "sil-" + st, dataset: { id: s.id } },
        h("td", null, h("span", { class: `badge sil-${st}` }, st)),
        h("td", null, s.matchers.map((m) => h("code", { class: "matcher-text" }, matcherText(m)))),
        h("td", { class: "nowrap" }, local(parseTime(s.starts_at))),
        h("td", { class: "nowrap", title: local(ends) }, st === "expired" ? local(ends) : `${local(ends)} (in ${duration(ends - now())})`),
        h("td", null, s.created_by),
        h("td", { class: "ellipsis", title: s.comment }, s.comment),
        h("td", { class: "muted mono" }, s.id),
        h("td", null, st === "expired" ? null : btn),
      );
    });
    replace(
      listEl,
      h(
        "table",
        { class: "table", id: "silences" },
        h("thead", null, h("tr", null, ["State", "Matchers", "Starts", "Ends", "By", "Comment", "ID", ""].map((t) => h("th", null, t)))),
        h("tbody", null, rows),
      ),
    );
  }

  load();
  const timer = window.setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, 15000);
  return () => clearInterval(timer);
}
