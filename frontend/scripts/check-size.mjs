// Bundle-size budget. The JavaScript a page loads before it can show anything (the
// entry chunk and every chunk it imports statically) must stay under 200 KB gzipped.
// Chunks loaded on demand (the math renderer, the PDF viewer, pdf.js's worker) are
// listed one by one with their sizes but do not count against the budget.
//
// Which chunk is which comes from Vite's build manifest (dist/.vite/manifest.json,
// `build.manifest` in vite.config.ts): `isEntry` marks the entry, `imports` its static
// imports, `dynamicImports` what it loads later.
//
//   node scripts/check-size.mjs [dist-dir]      (default: dist/)
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 200 * 1024;
// What the people reading the report call the lazy chunks, by the module they start from.
const NAMES = [
  [/lib\/math\.tsx?$/, "math chunk (KaTeX)"],
  [/pdf\.worker/, "pdf.js worker"],
  [/pdf|viewer/i, "PDF viewer chunk"],
];

const dist = resolve(process.argv[2] ?? new URL("../dist/", import.meta.url).pathname);
const manifestPath = join(dist, ".vite", "manifest.json");
if (!existsSync(manifestPath)) {
  console.error(`no build manifest in ${dist}: run npm run build first (vite.config.ts sets build.manifest)`);
  process.exit(1);
}
const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
const kb = (bytes) => `${(bytes / 1024).toFixed(1).padStart(8)} KB gz`;
const isScript = (file) => /\.m?js$/.test(file);

// The entry chunks and, transitively, what they import statically: loaded with the page.
const main = new Set();
const visit = (key) => {
  const chunk = manifest[key];
  if (!chunk || main.has(chunk.file)) return;
  main.add(chunk.file);
  for (const dep of chunk.imports ?? []) visit(dep);
};
for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key);
if (!main.size) {
  console.error(`the manifest in ${dist} names no entry chunk`);
  process.exit(1);
}

const nameOf = (chunk) => {
  const from = chunk.src ?? chunk.name ?? chunk.file;
  const known = NAMES.find(([pattern]) => pattern.test(from) || pattern.test(chunk.file));
  return known ? known[1] : `lazy chunk from ${from}`;
};
const cssOf = (chunk) => (chunk.css ?? []).reduce((sum, file) => sum + gz(file), 0);

let total = 0;
let mainCss = 0;
console.log(`Loaded with the page (budget ${BUDGET_BYTES / 1024} KB gz of JavaScript):`);
for (const [, chunk] of Object.entries(manifest)) {
  if (!main.has(chunk.file) || !isScript(chunk.file)) continue;
  const size = gz(chunk.file);
  total += size;
  mainCss += chunk.isEntry ? cssOf(chunk) : 0;
  console.log(`${kb(size)}  ${chunk.file}  ${chunk.isEntry ? "entry" : "imported by the entry"}`);
}
const verdict = total <= BUDGET_BYTES ? "within" : "OVER";
console.log(`${kb(total)}  main JavaScript, ${verdict} the ${BUDGET_BYTES / 1024} KB budget (CSS ${kb(mainCss).trim()})`);

// Everything else: the manifest's other chunks, then script files it does not list
// (a worker emitted as an asset).
console.log("Loaded on demand (not in the budget):");
const listed = new Set(main);
let lazy = 0;
for (const [, chunk] of Object.entries(manifest)) {
  if (listed.has(chunk.file) || !isScript(chunk.file)) continue;
  listed.add(chunk.file);
  const css = cssOf(chunk);
  lazy++;
  console.log(`${kb(gz(chunk.file))}  ${chunk.file}  ${nameOf(chunk)}${css ? ` (+ CSS ${kb(css).trim()})` : ""}`);
}
for (const file of readdirSync(join(dist, "assets"))) {
  const path = `assets/${file}`;
  if (listed.has(path) || !isScript(file)) continue;
  lazy++;
  console.log(`${kb(gz(path))}  ${path}  ${nameOf({ file })}`);
}
if (!lazy) console.log("   (none)");
process.exit(total <= BUDGET_BYTES ? 0 : 1);
