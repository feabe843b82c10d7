// Checks the built book's links: every relative link points at a page the book has, and every
// `#anchor` at an element with that id. External links (http:, https:, mailto:) are not
// followed (nothing outside the machine can be reached).
//
//   node scripts/check-book-links.mjs target/book
import { readdirSync, readFileSync, existsSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(process.argv[2] ?? "target/book");
if (!existsSync(join(root, "index.html"))) {
  console.error(`no book at ${root}: run \`make docs\` first`);
  process.exit(2);
}

/** The HTML pages under `dir`, skipping the theme's own files. */
function pages(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return ["FontAwesome", "fonts", "css"].includes(name) ? [] : pages(path);
    return name.endsWith(".html") && name !== "404.html" && name !== "toc.html" ? [path] : [];
  });
}

const idsOf = new Map();
/** The element ids of a page (cached). */
function ids(path) {
  if (!idsOf.has(path)) {
    const html = readFileSync(path, "utf8");
    idsOf.set(path, new Set([...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1])));
  }
  return idsOf.get(path);
}

const broken = [];
const all = pages(root);
for (const page of all) {
  const html = readFileSync(page, "utf8");
  // The page's own content only: mdBook's navigation is generated and always right.
  const main = html.match(/<main>([\s\S]*?)<\/main>/)?.[1] ?? html;
  for (const [, href] of main.matchAll(/\bhref="([^"]*)"/g)) {
    if (/^(https?:|mailto:|data:)/.test(href)) continue;
    const decoded = href.replace(/&amp;/g, "&");
    const [path, anchor] = decoded.split("#");
    const target = path ? resolve(dirname(page), path) : page;
    const where = `${relative(root, page)}: ${href}`;
    if (!target.startsWith(root) || !existsSync(target)) {
      broken.push(`${where} (no such page)`);
    } else if (anchor && target.endsWith(".html") && !ids(target).has(decodeURIComponent(anchor))) {
      broken.push(`${where} (no #${anchor} there)`);
    }
  }
}
if (broken.length) {
  console.error(`${broken.length} broken links in the book:\n  ${broken.join("\n  ")}`);
  process.exit(1);
}
console.log(`book links: ${all.length} pages, every relative link and anchor resolves`);
