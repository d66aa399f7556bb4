#!/usr/bin/env node
// Validates KQL files with the Kusto language service (@kusto/language-service-next, pinned in package-lock.json)
// against the Application Insights schema in appinsights-schema.json: syntax, tables, columns, functions, types.
// Usage: node tools/kql_check.js FILE.kql...  Prints one JSON line per file; exit 1 if any file has an error.
"use strict";
const fs = require("fs");
const path = require("path");

const pkgDir = path.join(__dirname, "node_modules", "@kusto", "language-service-next");
if (!fs.existsSync(path.join(pkgDir, "Kusto.Language.Bridge.js"))) {
    console.error("@kusto/language-service-next is missing: run tools/install-infra-tools.sh");
    process.exit(3);
}
require(path.join(pkgDir, "bridge.min.js"));                // attaches the Bridge.NET runtime to globalThis
require(path.join(pkgDir, "Kusto.Language.Bridge.min.js")); // attaches globalThis.Kusto

function appInsightsGlobals() {
    const schema = JSON.parse(fs.readFileSync(path.join(__dirname, "appinsights-schema.json"), "utf8"));
    const Symbols = Kusto.Language.Symbols;
    const tables = Object.entries(schema.tables).map(
        ([name, columns]) => new Symbols.TableSymbol.$ctor7(name, `(${schema.common}, ${columns})`, null));
    const db = new Symbols.DatabaseSymbol.ctor("appinsights", tables);
    return Kusto.Language.GlobalState.Default.WithDatabase(db);
}

function check(text, globals) {
    const diagnostics = Kusto.Language.KustoCode.ParseAndAnalyze(text, globals).GetDiagnostics();
    const out = [];
    for (let i = 0; i < diagnostics.Count; i++) {
        const d = diagnostics.getItem(i);
        const line = text.slice(0, d.Start).split("\n").length;
        out.push({severity: String(d.Severity), code: d.Code, message: d.Message, start: d.Start, line});
    }
    return out;
}

const files = process.argv.slice(2);
if (files.length === 0) {
    console.error("usage: node tools/kql_check.js FILE.kql...");
    process.exit(2);
}
const globals = appInsightsGlobals();
let failed = false;
for (const file of files) {
    const diagnostics = check(fs.readFileSync(file, "utf8"), globals);
    const errors = diagnostics.filter((d) => d.severity === "Error").length;
    failed = failed || errors > 0;
    console.log(JSON.stringify({file, errors, diagnostics}));
}
process.exit(failed ? 1 : 0);
