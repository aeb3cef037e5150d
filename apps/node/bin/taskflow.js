#!/usr/bin/env node
// Committed, so npm can link and chmod the bin on a fresh clone before the build creates dist/.
// dist/cli.js is dist/bin.js bundled with the SDK (build-cli.mjs): one file starts a client
// command in about half the time (ADR 0031).
await import("../dist/cli.js");
