export const MONITORING_PLACEHOLDER = true;
