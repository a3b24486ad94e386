// Times in the zone the person picked (default: the browser's), remembered in this
// browser. The API is asked for its own strings (created_at, created_at_string) in the
// same zone.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

const ZONE_KEY = "executions.timeZone";

/** The browser's own zone. */
export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The zone times are shown in. */
export function zone(): string {
  return localStorage.getItem(ZONE_KEY) || browserZone();
}

/** Shows times in `name` from now on. */
export function setZone(name: string): void {
  if (name === browserZone()) localStorage.removeItem(ZONE_KEY);
  else localStorage.setItem(ZONE_KEY, name);
}

/** Every zone the browser knows, the current one included. */
export function zones(): string[] {
  const supported = (Intl as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf;
  const names = supported ? supported("timeZone") : [];
  for (const extra of ["UTC", zone(), browserZone()]) if (!names.includes(extra)) names.push(extra);
  return names.sort();
}

let formatter: Intl.DateTimeFormat | undefined;
let formatterZone = "";

/** A timestamp in the chosen zone ("" when unset). */
export function formatTime(ts: Timestamp | undefined): string {
  if (!ts) return "";
  if (!formatter || formatterZone !== zone()) {
    formatterZone = zone();
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: formatterZone,
      year: "numeric",
      month: "short",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      timeZoneName: "short",
    });
  }
  return formatter.format(timestampDate(ts));
}
