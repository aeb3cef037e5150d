import { fileURLToPath } from "node:url";

/** Absolute path of the built dashboard's static files (index.html, app.js, style.css). */
export const dashboardDir = fileURLToPath(new URL("./dist/", import.meta.url));
