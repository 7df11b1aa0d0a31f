/** One line of srvlink's structured log, parsed: what every test reading logs holds. */
export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}
