import { storeConformance } from "@taskflow/core/testing";
import { MemoryTaskStore } from "./memory-store.js";

// The in-memory store keeps the records it is given (by reference), as the PLM relies on.
storeConformance("MemoryTaskStore", { makeStore: () => new MemoryTaskStore(), keepsReferences: true });
