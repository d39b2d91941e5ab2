// Builds the web client into dist/ with fixed file names (the server embeds them, and CI checks
// that a fresh build equals the committed one): app.js (all of src/, bundled and minified),
// app.css and index.html. `--unit` builds the unit tests for node into tests/.build/ instead.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const common = { bundle: true, logLevel: "warning", legalComments: "none", charset: "utf8" };

if (process.argv.includes("--unit")) {
  await build({
    ...common,
    entryPoints: [join(root, "tests/unit.ts")],
    outfile: join(root, "tests/.build/unit.mjs"),
    platform: "node",
    format: "esm",
    target: "node18",
  });
} else {
  const dist = join(root, "dist");
  mkdirSync(dist, { recursive: true });
  // Files of an older build (or another layout) must not linger into the binary.
  for (const name of readdirSync(dist)) rmSync(join(dist, name), { recursive: true });
  await build({
    ...common,
    entryPoints: [join(root, "src/main.ts")],
    outfile: join(dist, "app.js"),
    format: "esm",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
  });
  await build({
    ...common,
    entryPoints: [join(root, "src/app.css")],
    outfile: join(dist, "app.css"),
    minify: true,
    target: ["chrome110", "firefox110", "safari16"],
  });
  copyFileSync(join(root, "src/index.html"), join(dist, "index.html"));
}
