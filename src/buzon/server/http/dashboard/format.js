// Numbers, sizes, durations and times as the tables and cards show them.
import { h } from "./dom.js";

export const count = (n) => Number(n).toLocaleString("en");
export const perSecond = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function when(iso) {
  const at = new Date(iso);
  return h("time", { datetime: iso, title: at.toLocaleString() }, at.toLocaleString());
}
