export { prng } from "../prng.js";
