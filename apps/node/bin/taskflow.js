#!/usr/bin/env node
// Committed, so npm can link and chmod the bin on a fresh clone before the build creates dist/.
await import("../dist/bin.js");
