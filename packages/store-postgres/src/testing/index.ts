export { postgresBinDir, startTestPostgres, type TestPostgres, type TestPostgresOptions } from "./server.js";
