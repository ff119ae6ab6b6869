// The recon agent's web UI: checks overview, check page with history and
// Live graphs, overlay (event correlation), alerts and silences. Served
// embedded by the agent (agent/api/ui); talks only to the agent's API.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { h, replace } from "./dom";
import { onTokenChange, setToken, token } from "./api";
import { start, type Route } from "./router";
import { overviewPage } from "./pages/overview";
import { checkPage } from "./pages/check";
import { overlayPage } from "./pages/overlay";
import { alertsPage, silencesPage } from "./pages/alerts";

const nav = [
  { key: "", label: "Checks" },
  { key: "overlay", label: "Overlay" },
  { key: "alerts", label: "Alerts" },
  { key: "silences", label: "Silences" },
];

function layout() {
  const app = document.getElementById("app")!;
  const links = nav.map((n) => h("a", { href: "#/" + n.key, dataset: { nav: n.key } }, n.label));
  const agent = h("span", { class: "agent", id: "agent-name" });
  const auth = h("span", { class: "auth" });
  const renderAuth = () => {
    replace(
      auth,
      token()
        ? h("button", { class: "link", title: "forget the API token kept in this browser", onclick: () => setToken("") }, "forget token")
        : null,
    );
  };
  onTokenChange(renderAuth);
  renderAuth();
  // /healthz needs no token: it names the agent and tells whether it is up.
  const health = async () => {
    try {
      const r = await fetch("/healthz", { cache: "no-store" });
      const b = await r.json();
      agent.textContent = `agent ${b.agent || ""}`;
      agent.className = "agent up";
    } catch {
      agent.textContent = "agent unreachable";
      agent.className = "agent down";
    }
  };
  health();
  setInterval(health, 15000);
  const main = h("main", { id: "main" });
  replace(
    app,
    h("header", { class: "top" }, h("a", { class: "brand", href: "#/" }, "recon"), h("nav", null, links), h("span", { class: "spacer" }), agent, auth),
    main,
  );
  const onRoute = (r: Route) => {
    const key = r.path[0] === "check" ? "" : r.path[0] || "";
    for (const a of links) a.classList.toggle("on", a.dataset.nav === key);
    document.title = (nav.find((n) => n.key === key)?.label || "recon") + " · recon";
  };
  start(
    {
      "": overviewPage,
      check: checkPage,
      overlay: overlayPage,
      alerts: alertsPage,
      silences: silencesPage,
      "*": (root) => {
        root.append(h("h2", null, "Not found"), h("p", null, h("a", { href: "#/" }, "Back to the checks")));
      },
    },
    main,
    onRoute,
  );
}

layout();
