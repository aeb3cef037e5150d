export { IndexedHeap } from "./indexed-heap.js";
export type { Handle, HeapOptions, SharedHeapRef } from "./indexed-heap.js";
export { HeapAttachError, HeapFullError, ShmHeapError, StaleHandleError } from "./errors.js";
