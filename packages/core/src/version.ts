/** The version of the contracts in this package; policies declare the range they support. */
export const CORE_VERSION = "0.1.0";
