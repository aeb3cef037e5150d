export { IndexedHeap } from "./indexed-heap.js";
export { MAX_CAPACITY as MAX_HEAP_CAPACITY } from "./layout.js";
export type { Handle, HeapOptions, SharedHeapRef } from "./indexed-heap.js";
export { HeapAttachError, HeapFullError, ShmHeapError, StaleHandleError } from "./errors.js";
