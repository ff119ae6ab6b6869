// Builds the web UI into agent/api/ui/dist, which is committed so that
// `go build` needs no npm. The output is deterministic (no timestamps):
// the same sources give the same bytes. build-info.json records a hash of
// the sources so a Go test notices a stale build (see sourceHash below and
// agent/api/ui/ui_test.go, which computes the same hash).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, rmSync, mkdirSync, writeFileSync, statSync } from "node:fs";
import { join, relative, dirname, sep } from "node:path";
import { fileURLToPath } from "node:url";

const webDir = dirname(fileURLToPath(import.meta.url));
const outDir = join(webDir, "..", "agent", "api", "ui", "dist");

// sourceHash: sha256 over "path\0sha256(content)\n" for every file under
// web/ except node_modules, dot files and *.md (docs do not change the
// build), sorted by slash-separated path.
function sourceHash() {
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      if (name.startsWith(".") || name === "node_modules") continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (!name.endsWith(".md")) files.push(relative(webDir, p).split(sep).join("/"));
    }
  };
  walk(webDir);
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash("sha256");
  for (const f of files) {
    const c = createHash("sha256").update(readFileSync(join(webDir, f))).digest("hex");
    h.update(`${f}\0${c}\n`);
  }
  return { hash: h.digest("hex"), files };
}

const short = (buf) => createHash("sha256").update(buf).digest("hex").slice(0, 12);

const uplotPkg = JSON.parse(readFileSync(join(webDir, "node_modules", "uplot", "package.json"), "utf8"));
const esbuildPkg = JSON.parse(readFileSync(join(webDir, "node_modules", "esbuild", "package.json"), "utf8"));

const result = await build({
  absWorkingDir: webDir,
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: "out", // not written: write is false
  write: false,
  sourcemap: false,
  legalComments: "none",
  banner: {
    js: `/*! recon web UI. Bundles uPlot v${uplotPkg.version} (c) Leon Sorokin, MIT licence: see LICENSES.txt */`,
    css: `/*! recon web UI. Includes uPlot v${uplotPkg.version} styles (c) Leon Sorokin, MIT licence: see LICENSES.txt */`,
  },
  logLevel: "warning",
});

const outputs = {};
for (const f of result.outputFiles) {
  const name = f.path.endsWith(".css") ? "app.css" : "app.js";
  outputs[name] = Buffer.from(f.contents);
}
if (!outputs["app.js"] || !outputs["app.css"]) {
  throw new Error("esbuild produced " + Object.keys(outputs).join(", ") + "; want app.js and app.css");
}

// Cache busting by content hash in the query string: the Go handler
// serves every file with an ETag and revalidation, so this only matters
// for proxies that ignore that.
let html = readFileSync(join(webDir, "index.html"), "utf8");
html = html
  .replace("{{APP_JS}}", `assets/app.js?v=${short(outputs["app.js"])}`)
  .replace("{{APP_CSS}}", `assets/app.css?v=${short(outputs["app.css"])}`);
if (html.includes("{{")) throw new Error("index.html: unreplaced placeholder");

const licences =
  "recon web UI third-party licences\n\n" +
  `uPlot ${uplotPkg.version} (${uplotPkg.homepage || "https://github.com/leeoniya/uPlot"})\n\n` +
  readFileSync(join(webDir, "node_modules", "uplot", "LICENSE"), "utf8");

const src = sourceHash();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(join(outDir, "assets"), { recursive: true });
writeFileSync(join(outDir, "index.html"), html);
writeFileSync(join(outDir, "assets", "app.js"), outputs["app.js"]);
writeFileSync(join(outDir, "assets", "app.css"), outputs["app.css"]);
writeFileSync(join(outDir, "assets", "LICENSES.txt"), licences);
writeFileSync(
  join(outDir, "build-info.json"),
  JSON.stringify(
    {
      source_sha256: src.hash,
      source_files: src.files,
      esbuild: esbuildPkg.version,
      uplot: uplotPkg.version,
    },
    null,
    2,
  ) + "\n",
);
console.log(
  `built ${relative(process.cwd(), outDir)}: app.js ${outputs["app.js"].length} B, app.css ${outputs["app.css"].length} B, sources ${src.hash.slice(0, 12)}`,
);
