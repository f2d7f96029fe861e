// Validates an AsyncAPI document with the AsyncAPI project's own parser. `make lint` runs it:
// it copies this file next to the parser it installed (.tools/node) and runs
// `node .tools/node/validate-asyncapi.mjs docs/asyncapi.yaml`. Errors fail; warnings are printed.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: validate-asyncapi.mjs <document.yaml>");
  process.exit(2);
}
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"));
const severities = ["error", "warning", "info", "hint"];
for (const diagnostic of diagnostics) {
  const where = diagnostic.path?.join(".") || "(document)";
  console.error(`${path}: ${severities[diagnostic.severity] ?? "note"} at ${where}: ${diagnostic.message}`);
}
const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 0).length;
if (!document || errors > 0) {
  console.error(`${path}: ${errors} error(s); regenerate it with make asyncapi`);
  process.exit(1);
}
console.log(`${path}: a valid AsyncAPI ${document.version()} document`);
