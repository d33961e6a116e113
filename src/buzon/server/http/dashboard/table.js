// Filling a <table> from rows of data, one column description per column.
import { h } from "./dom.js";

// columns: [{title, num, key, cell(row) -> node | string}]; attrs(row) -> attributes of the <tr>
export function fillTable(table, columns, rows, { attrs, empty } = {}) {
  const head = h("thead", null, h("tr", null, columns.map((c) =>
    h("th", { class: c.num ? "num" : null, scope: "col" }, c.title))));
  const body = h("tbody", null, rows.length
    ? rows.map((row) => h("tr", attrs ? attrs(row) : null, columns.map((c) =>
        h("td", { class: [c.num ? "num" : "", c.key || ""].join(" ").trim() || null },
          c.cell(row)))))
    : h("tr", null, h("td", { class: "empty", colspan: columns.length }, empty || "Nothing yet.")));
  table.replaceChildren(head, body);
}
