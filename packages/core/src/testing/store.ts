/** Store conformance kit: filled in next. */
export {};
