/** Absolute path of the built dashboard's static files (index.html, app.js, style.css). */
export declare const dashboardDir: string;
